# The Python package's tests, part of every ctest run (included from tests/CMakeLists.txt):
# python_install builds the package with pip into a venv of the build tree (a full
# build of libveil and the module through scikit-build-core; its own build tree, kept
# between runs so later runs are incremental), python_tests runs pytest on python/tests.
set(VEIL_PYTHON_VENV ${CMAKE_BINARY_DIR}/python-venv)
add_test(NAME python_install
  COMMAND ${CMAKE_SOURCE_DIR}/tools/python_env.sh ${VEIL_PYTHON_VENV} ${CMAKE_BINARY_DIR}/python-build)
# A cold build compiles all of libveil with two jobs, without the CUDA kernels (the
# Python tests run on the cpu backend; a user's `pip install .` builds them when nvcc
# is there): about 2 minutes on 2 cores, 3 s when nothing changed; the limit leaves
# room for a slow CI machine running other tests beside it.
set_tests_properties(python_install PROPERTIES FIXTURES_SETUP veil_python TIMEOUT 2400
  ENVIRONMENT "CMAKE_BUILD_PARALLEL_LEVEL=2;VEIL_PYTHON_CMAKE_DEFINES=VEIL_CUDA=OFF")
add_test(NAME python_tests COMMAND ${CMAKE_SOURCE_DIR}/tools/python_tests.sh ${VEIL_PYTHON_VENV})
set_tests_properties(python_tests PROPERTIES FIXTURES_REQUIRED veil_python TIMEOUT 600
  ENVIRONMENT "OMP_NUM_THREADS=1;VEIL_CLI=$<TARGET_FILE:veil-cli>")
# The build starts first (ctest runs the costliest tests first) so that the pytest run
# does not wait at the end; one OpenMP thread per process: ctest -j2 runs another test
# beside it, and spinning OpenMP threads on a busy core slow both by an order of magnitude.
set_tests_properties(python_install PROPERTIES COST 1000)
