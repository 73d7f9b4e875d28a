#!/usr/bin/env bash
# Creates (or updates) a virtual environment with the `veil` Python package built from
# this checkout: tools/python_env.sh [VENV [BUILD_DIR]]
#   VENV       the environment (default: .venv); made with /usr/bin/python3 (Debian's
#              3.11, which sees python3-numpy / -torch / -onnx / -pytest) and
#              --system-site-packages when absent
#   BUILD_DIR  scikit-build-core's build tree (default: build/python): kept between
#              runs, so a second run rebuilds only what changed
# The build backend (scikit-build-core, nanobind) is installed from PyPI into the venv
# and the package is built without build isolation, so the build tree's paths stay the
# same from run to run and rebuilds are incremental. Quiet unless it fails;
# CMAKE_BUILD_PARALLEL_LEVEL (default 2) sets the compile jobs; VEIL_PYTHON_CMAKE_DEFINES
# (e.g. "VEIL_CUDA=OFF VEIL_NATIVE=ON") passes CMake definitions to the build.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${1:-$repo/.venv}
build=${2:-$repo/build/python}
python=${VEIL_PYTHON_INTERPRETER:-/usr/bin/python3}
case $build in /*) ;; *) build=$PWD/$build ;; esac

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv --system-site-packages "$venv"
fi
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
pip=("$venv/bin/python" -m pip install --disable-pip-version-check --no-warn-script-location)
defines=()
for d in ${VEIL_PYTHON_CMAKE_DEFINES:-}; do defines+=(--config-settings=cmake.define."${d%%=*}"="${d#*=}"); done
if ! { "${pip[@]}" "scikit-build-core>=0.10" "nanobind>=2.0" &&
       "${pip[@]}" --no-build-isolation --config-settings=build-dir="$build" ${defines[@]+"${defines[@]}"} "$repo"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "python_env.sh: pip install failed (full log above)" >&2
  exit 1
fi
"$venv/bin/python" -c "import veil; print('veil', veil.__version__, 'in', '$venv')"
