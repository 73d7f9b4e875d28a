#!/usr/bin/python3
"""Bar charts of time per operation: Veil's cpu and cuda backends and their peers.

Run it with /usr/bin/python3, which has Debian's matplotlib (apt-get install
python3-matplotlib); it draws with the non-interactive 'Agg' backend, so no display
is needed. Parsing needs only the standard library.

    /usr/bin/python3 bench/charts.py --out docs/img --prefix h200- docs/data/first-h200-run.json
    /usr/bin/python3 bench/charts.py --out /tmp/c bench.json phantom.txt cheddar.txt report.json
    /usr/bin/python3 bench/charts.py --self-test

Inputs (any mix, any number; the kind of each file is recognised from its content):

  * Google Benchmark JSON from `veil-bench --benchmark_out=F --benchmark_out_format=json`:
    cpu rows "BM_<Op>/<N>" become the series "Veil cpu", cuda rows
    "BM_<Op>/<N>/cuda/manual_time" the series "Veil cuda" (real_time, time_unit;
    errored rows and aggregates are skipped, repeated rows give their median; a
    "median" aggregate counts only for a run without iteration rows).
    Only the per-operation rows are drawn (not the Burst, Pair or transfer rows).
  * Peer text output, one line per op (other lines are ignored, '#' lines give the device):
        phantom <op> N=<N> L=<limbs> dnum=<d> us=<median>
        cheddar <op> N=<N> logPQ=<bits> limbs=<L> dnum=<d> us=<median>
    Phantom ops ntt, intt, add, mul, relin, mulrelin, rescale, rotate and Cheddar ops
    HMult (tensor + relinearize), Rescale, HMultRescale, HRot, Boot, BootMinKS are
    renamed to Veil's NTT, INTT, Add, Mul, Relin, MulRelin, Rescale, MulRelinRescale,
    Rotate, Bootstrap, BootstrapMinKS. A peer's first parameter set at each N is the
    series "Phantom" / "Cheddar" (the runs print the set matched to Veil's first);
    other sets at the same N get their own series, drawn without a ratio.
  * `bench/compare.py --json` reports (also `--load ... --json`): the series Veil cpu,
    SEAL and OpenFHE, labelled with the report's thread count.
  * Chart data files (schema "veil-charts/1", e.g. docs/data/first-h200-run.json):

        {"schema": "veil-charts/1",
         "source":  "what run this is (shown under every title)",
         "machine": "device / host (shown under every title)",
         "notes":   "free text (optional)",
         "series": [
           {"name": "Veil cuda",          legend label, unique
            "kind": "veil-cpu" | "veil-cuda" | "peer",
            "note": "free text (optional)",
            "shape": {"65536": "35 limbs, dnum 7"},       optional, per N, added to the legend
            "times_us": {"65536": {"MulRelin": 1065.5, ...}, ...},   N -> op -> microseconds
            "veil_us":  {"65536": {"MulRelin": 1058}}}    peers only, optional: Veil cuda
          ]}                                                timed beside this peer

    Op names are Veil's (BM_<Op> without "BM_"). For a peer, "veil_us" is the
    numerator of its "Veil cuda / peer" ratios; an empty {} means no like-for-like Veil
    figure (no ratio is drawn); without the key the ratios use the first "veil-cuda"
    series of the inputs.

Outputs (PNG, under --out, names start with --prefix):

  * ops-n<N>.png for every ring degree N: grouped bars per operation, one bar per
    series that has the op, log time axis in microseconds, value labels (microseconds
    below 1 ms, ms above), one colour per backend or peer (hatching tells a peer's
    other parameter sets apart).
  * ratio-n<N>.png for --ratio-n (default 65536): Veil cuda time / peer time per
    operation with a line at 1.0 (below 1: Veil faster); skipped when no pair exists.

--self-test draws the committed docs/data/first-h200-run.json plus a few inline lines
of every input kind into a temporary folder and exits 1 if any expected chart is missing.
"""
import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import textwrap

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMITTED = os.path.join(REPO, "docs", "data", "first-h200-run.json")
UNIT_US = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}
# Veil's order (bench/gpu_table.py), then operations only a peer has.
OPS = ["NTT", "INTT", "Encode", "Encrypt", "Decrypt", "Add", "Mul", "MulRelin", "Relin", "Rescale",
       "Rotate", "RotateHoisted8", "KeySwitchInner", "KeySwitchApply",
       "MulRelinRescale", "Bootstrap", "BootstrapMinKS"]
PEER_OPS = {
    "phantom": {"ntt": "NTT", "intt": "INTT", "add": "Add", "mul": "Mul", "relin": "Relin",
                "mulrelin": "MulRelin", "rescale": "Rescale", "rotate": "Rotate"},
    "cheddar": {"HMult": "MulRelin", "Rescale": "Rescale", "HMultRescale": "MulRelinRescale",
                "HRot": "Rotate", "Boot": "Bootstrap", "BootMinKS": "BootstrapMinKS"},
}
COMPARE_OPS = {"ntt": "NTT", "intt": "INTT", "encode": "Encode", "encrypt": "Encrypt",
               "decrypt": "Decrypt", "add": "Add", "mul": "Mul", "mul_relin": "MulRelin",
               "relin": "Relin", "rescale": "Rescale", "rotate": "Rotate", "rotate_x8": "RotateHoisted8"}
COLOURS = {"Veil cpu": "#8c9bab", "Veil cuda": "#1f77b4", "Phantom": "#ff7f0e", "Cheddar": "#d62728",
           "SEAL": "#9467bd", "OpenFHE": "#8c564b"}
SPARE_COLOURS = ["#2ca02c", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
HATCHES = ["", "//", "..", "xx", "\\\\"]


def new_series(name, kind):
    return {"name": name, "kind": kind, "times_us": {}, "shape": {}}


def put(series, n, op, us):
    series["times_us"].setdefault(int(n), {})[op] = float(us)


# ------------------------------------------------------------------ inputs ----

def load_chart_data(data):
    """A veil-charts/1 file: the series as written, N keys made integers."""
    out = []
    for s in data["series"]:
        t = {"name": s["name"], "kind": s["kind"], "note": s.get("note", ""),
             "times_us": {int(n): dict(ops) for n, ops in s["times_us"].items()},
             "shape": {int(n): v for n, v in s.get("shape", {}).items()}}
        if "veil_us" in s:  # absent and empty mean different things (see the docstring)
            t["veil_us"] = {int(n): dict(ops) for n, ops in s["veil_us"].items()}
        out.append(t)
    return out, data.get("source", ""), data.get("machine", "")


def load_gbench(data, path):
    """veil-bench JSON: cpu and cuda per-op rows, median over repeated rows.

    Other aggregates are skipped; a "median" aggregate is used only when its run has no
    iteration rows (--benchmark_report_aggregates_only, as compare.py runs it)."""
    cpu, gpu = new_series("Veil cpu", "veil-cpu"), new_series("Veil cuda", "veil-cuda")
    runs, medians = {}, {}
    for row in data["benchmarks"]:
        aggregate = row.get("run_type") == "aggregate"
        if row.get("error_occurred") or (aggregate and row.get("aggregate_name") != "median"):
            continue
        name = row.get("run_name", row["name"])
        m = (re.fullmatch(r"BM_(\w+)/(\d+)", name) or
             re.fullmatch(r"BM_(\w+)/(\d+)/cuda/manual_time", name))
        if not m or m.group(1) not in OPS:  # bursts, pairs, transfers: not one op's time
            continue
        s = gpu if name.endswith("/cuda/manual_time") else cpu
        n, key = int(m.group(2)), (name.endswith("/cuda/manual_time"), int(m.group(2)), m.group(1))
        us = row["real_time"] * UNIT_US[row["time_unit"]]
        (medians if aggregate else runs).setdefault(key, []).append(us)
        if "limbs" in row and "dnum" in row:
            s["shape"][n] = "%d limbs, dnum %d" % (row["limbs"], row["dnum"])
    for key, v in {**medians, **runs}.items():
        put(gpu if key[0] else cpu, key[1], key[2], statistics.median(v))
    ctx = data.get("context", {})
    source = "veil-bench %s %s" % (os.path.basename(path), ctx.get("date", ""))
    machine = "%s, %s CPUs" % (ctx.get("host_name", "?"), ctx.get("num_cpus", "?"))
    return [s for s in (cpu, gpu) if s["times_us"]], source.strip(), machine


def load_compare(data, path):
    """bench/compare.py --json: Veil cpu, SEAL and OpenFHE columns."""
    threads = data.get("threads")
    tag = " (%s thread%s)" % (threads, "" if str(threads) == "1" else "s") if threads else ""
    cols = [("veil_ms", "Veil cpu" + tag, "veil-cpu"), ("seal_ms", "SEAL", "peer"),
            ("openfhe_ms", "OpenFHE" + tag, "peer")]
    out = [new_series(name, kind) for _, name, kind in cols]
    for row in data["rows"]:
        op = COMPARE_OPS.get(row["op"], row["op"])
        for (col, _, _), s in zip(cols, out):
            if row.get(col) is not None:
                put(s, row["N"], op, row[col] * 1e3)
    source = "compare.py %s, Veil %s %s" % (os.path.basename(path), data.get("veil_revision") or "",
                                            data.get("date", ""))
    machine = (data.get("machine") or {}).get("cpu", "")
    return [s for s in out if s["times_us"]], " ".join(source.split()), machine


def load_peer_text(text, path):
    """Phantom / Cheddar lines; the first parameter set per peer and N is the main series."""
    series, first, machine = {}, {}, ""
    for line in text.splitlines():
        dev = re.search(r'#\s*(?:phantom )?device[= ]"?([^"]+?)"? sm_\d+', line)
        if dev:
            machine = dev.group(1)
        m = re.search(r"\b(phantom|cheddar) (\w+) (N=\d+ .*us=[\d.eE+-]+)", line)
        if not m:
            continue
        peer, op = m.group(1), PEER_OPS[m.group(1)].get(m.group(2), m.group(2))
        f = dict(kv.split("=", 1) for kv in m.group(3).split())
        n = int(f["N"])
        shape = "L %s, dnum %s" % (f.get("L") or f.get("limbs"), f["dnum"])
        first.setdefault((peer, n), shape)
        name = peer.capitalize() if first[(peer, n)] == shape else "%s, %s" % (peer.capitalize(), shape)
        s = series.setdefault(name, new_series(name, "peer"))
        if name == peer.capitalize():
            s["shape"][n] = shape
        else:  # another chain of the peer's: not the one run against Veil's, so no ratio
            s["veil_us"] = {}
        put(s, n, op, f["us"])
    peers = "/".join(sorted({peer for peer, _ in first}))
    return list(series.values()), "%s output %s" % (peers, os.path.basename(path)), machine


def load_input(path):
    """(series, source, machine) of one file, whatever kind it is."""
    with open(path) as f:
        text = f.read()
    try:
        data = json.loads(text)
    except ValueError:
        return load_peer_text(text, path)
    if "series" in data:
        return load_chart_data(data)
    if "benchmarks" in data:
        return load_gbench(data, path)
    if "rows" in data:
        return load_compare(data, path)
    raise SystemExit("%s: JSON of an unknown kind (no series, benchmarks or rows)" % path)


def merge(all_series, new, path):
    """Same-named series from different files merge unless they overlap; then rename."""
    for s in new:
        old = next((o for o in all_series if o["name"] == s["name"]), None)
        clash = old and any(op in old["times_us"].get(n, {}) for n, ops in s["times_us"].items() for op in ops)
        if old and not clash and "veil_us" not in s and "veil_us" not in old:
            for n, ops in s["times_us"].items():
                old["times_us"].setdefault(n, {}).update(ops)
            old["shape"].update(s["shape"])
            continue
        if old:
            s["name"] += " [%s]" % os.path.basename(path)
        all_series.append(s)


# ------------------------------------------------------------------ charts ----

def family(s):
    """The colour key: the backend or the peer (first word of a peer's name)."""
    return {"veil-cpu": "Veil cpu", "veil-cuda": "Veil cuda"}.get(s["kind"], s["name"].split()[0].rstrip(","))


def styles(series):
    """One colour per family, hatching for a family's second, third... series."""
    out, seen, spare = {}, {}, iter(SPARE_COLOURS * 4)
    for s in series:
        fam = family(s)
        if fam not in COLOURS:
            COLOURS[fam] = next(spare)
        out[s["name"]] = (COLOURS[fam], HATCHES[seen.get(fam, 0) % len(HATCHES)])
        seen[fam] = seen.get(fam, 0) + 1
    return out


def op_order(ops):
    return sorted(ops, key=lambda op: (OPS.index(op) if op in OPS else len(OPS), op))


def fmt_us(us):
    return "%.3g ms" % (us / 1e3) if us >= 1e3 else "%.3g" % us


def log2_label(n):
    return "2^%d" % (n.bit_length() - 1) if n & (n - 1) == 0 else str(n)


def heading(fig, title, machine, source):
    """Title plus the machine and the source, wrapped, under it."""
    fig.suptitle(title, fontsize=13, y=0.99)
    sub = textwrap.wrap("machine: " + machine, 160) + textwrap.wrap("source: " + source, 160)
    fig.text(0.5, 0.94, "\n".join(sub), ha="center", va="top", fontsize=8, color="#444444")


def grouped_bars(ax, groups, style, log):
    """groups: [(op, [(series name, value)])]; only the series an op has get a slot."""
    drawn = {}
    for x, (_, bars) in enumerate(groups):
        width = min(0.8 / len(bars), 0.3)
        for i, (name, v) in enumerate(bars):
            xi = x + (i - (len(bars) - 1) / 2) * width
            colour, hatch = style[name]
            drawn[name] = ax.bar(xi, v, width, color=colour, hatch=hatch, edgecolor="white", linewidth=0.4)
            if log:  # many bars: upright labels in µs / ms
                ax.text(xi, v * 1.06, fmt_us(v), rotation=90, ha="center", va="bottom", fontsize=6.5)
            else:  # few bars: flat labels, kept legible over the 1.0 line
                ax.text(xi, v + 0.03, "%.2f" % v, ha="center", va="bottom", fontsize=7.5,
                        bbox=dict(facecolor="white", edgecolor="none", pad=0.5, alpha=0.85))
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([op for op, _ in groups], rotation=30, ha="right", fontsize=9)
    ax.set_xlim(-0.6, len(groups) - 0.4)
    return drawn


def legend(ax, drawn, labels):
    """Under the axes, two columns: the labels carry parameters and get long."""
    ax.legend([drawn[k] for k in labels], [labels[k] for k in labels], loc="upper center",
              bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=8, frameon=False)


def new_figure(n_groups):
    import matplotlib  # here, not at the top: parsing and --help work without it
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(min(18, max(8, 0.85 * n_groups + 2)), 6.4), dpi=100)
    fig.subplots_adjust(top=0.85, bottom=0.2, left=0.07, right=0.98)
    ax.grid(axis="y", which="major", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    return plt, fig, ax


def save(plt, fig, path):
    fig.savefig(path, bbox_inches="tight", pad_inches=0.15)  # crops what the legend leaves empty
    plt.close(fig)


def draw_times(series, n, machine, source, path):
    """ops-n<N>.png: time per op at one N, every series that has it."""
    here = [s for s in series if s["times_us"].get(n)]
    ops = op_order({op for s in here for op in s["times_us"][n]})
    groups = [(op, [(s["name"], s["times_us"][n][op]) for s in here if op in s["times_us"][n]]) for op in ops]
    plt, fig, ax = new_figure(len(groups))
    drawn = grouped_bars(ax, groups, styles(series), log=True)
    ax.set_yscale("log")
    values = [v for _, bars in groups for _, v in bars]
    ax.set_ylim(min(values) / 2, max(values) * 12)  # room for the rotated labels
    ax.set_ylabel("time per operation (µs, log scale; labels >= 1 ms in ms)")
    labels = {s["name"]: s["name"] + (" (%s)" % s["shape"][n] if n in s["shape"] else "")
              for s in here if s["name"] in drawn}
    legend(ax, drawn, labels)
    heading(fig, "Time per operation, N = %s (lower is better)" % log2_label(n), machine, source)
    save(plt, fig, path)


def ratios(series, n):
    """{peer name: {op: Veil cuda us / peer us}} at N, pairing as the docstring says."""
    veil = next((s["times_us"].get(n, {}) for s in series if s["kind"] == "veil-cuda"), {})
    out = {}
    for s in series:
        if s["kind"] != "peer":
            continue
        num = s["veil_us"].get(n, {}) if "veil_us" in s else veil
        r = {op: num[op] / us for op, us in s["times_us"].get(n, {}).items() if op in num and us > 0}
        if r:
            out[s["name"]] = r
    return out


def draw_ratios(series, n, machine, source, path):
    """ratio-n<N>.png: Veil cuda / peer per op, a line at 1.0; False if nothing pairs."""
    by_peer = ratios(series, n)
    if not by_peer:
        return False
    ops = op_order({op for r in by_peer.values() for op in r})
    groups = [(op, [(name, r[op]) for name, r in by_peer.items() if op in r]) for op in ops]
    plt, fig, ax = new_figure(max(len(groups), 6))
    drawn = grouped_bars(ax, groups, styles(series), log=False)
    top = max(v for _, bars in groups for _, v in bars)
    ax.set_ylim(0, max(1.3, top * 1.25))
    ax.axhline(1.0, color="black", linewidth=1.0, linestyle="--")
    ax.set_ylabel("Veil cuda time / peer time (below 1: Veil faster)")
    shape = {s["name"]: s["shape"].get(n) for s in series}
    labels = {k: k + (" (%s)" % shape[k] if shape.get(k) else "") for k in by_peer}
    legend(ax, drawn, labels)
    heading(fig, "Veil cuda time / peer time, N = %s" % log2_label(n), machine, source)
    save(plt, fig, path)
    return True


def draw_all(paths, out, prefix="", ratio_n=65536):
    """Load every input, draw every chart; returns the paths written."""
    series, sources, machines = [], [], []
    for p in paths:
        new, source, machine = load_input(p)
        merge(series, new, p)
        sources += [source] if source and source not in sources else []
        machines += [machine] if machine and machine not in machines else []
    if not series:
        raise SystemExit("no timings found in %s" % ", ".join(paths))
    os.makedirs(out, exist_ok=True)
    machine, source = "; ".join(machines) or "machine unknown", "; ".join(sources)
    written = []
    for n in sorted({n for s in series for n in s["times_us"]}):
        written.append(os.path.join(out, "%sops-n%d.png" % (prefix, n)))
        draw_times(series, n, machine, source, written[-1])
    path = os.path.join(out, "%sratio-n%d.png" % (prefix, ratio_n))
    if draw_ratios(series, ratio_n, machine, source, path):
        written.append(path)
    else:
        print("note: no Veil cuda / peer pair at N = %d, no ratio chart" % ratio_n, file=sys.stderr)
    return written


# --------------------------------------------------------------- self-test ----

SAMPLE_PEERS = """# phantom device="NVIDIA H200" sm_90 runtime=13000
phantom mulrelin N=65536 L=35 dnum=7 us=1211.00
phantom rotate N=65536 L=35 dnum=7 us=1178.00
cheddar HMult N=65536 logPQ=1745 limbs=47 dnum=4 us=420.5
cheddar HMult N=65536 logPQ=1745 limbs=23 dnum=2 us=235.4
"""
SAMPLE_GBENCH = {"context": {"host_name": "sample", "num_cpus": 16}, "benchmarks": [
    {"name": "BM_MulRelin/65536", "run_type": "iteration", "real_time": 82.5, "time_unit": "ms",
     "limbs": 35, "dnum": 7},
    {"name": "BM_MulRelin/65536/cuda/manual_time", "run_type": "iteration", "real_time": 1065.5,
     "time_unit": "us", "limbs": 35, "dnum": 7},
    {"name": "BM_MulRelin/65536/cuda/manual_time_mean", "run_type": "aggregate", "real_time": 1.0,
     "time_unit": "us"}]}
SAMPLE_COMPARE = {"threads": 1, "rows": [{"op": "mul_relin", "N": 8192, "veil_ms": 2.28, "seal_ms": 3.8,
                                          "openfhe_ms": 5.38}]}


def expect(written, names):
    missing = [n for n in names if not any(os.path.basename(w) == n for w in written)]
    bad = [w for w in written if not open(w, "rb").read(8).startswith(b"\x89PNG")]
    return ["missing %s" % n for n in missing] + ["not a PNG: %s" % w for w in bad]


def self_test():
    """Charts of the committed run and of one sample of every input kind."""
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        with open(COMMITTED) as f:
            ns = sorted({int(n) for s in json.load(f)["series"] for n in s["times_us"]})
        written = draw_all([COMMITTED], os.path.join(tmp, "run"))
        problems += expect(written, ["ops-n%d.png" % n for n in ns] + ["ratio-n65536.png"])
        samples = []
        for name, body in (("peers.txt", SAMPLE_PEERS), ("bench.json", json.dumps(SAMPLE_GBENCH)),
                           ("report.json", json.dumps(SAMPLE_COMPARE))):
            samples.append(os.path.join(tmp, name))
            with open(samples[-1], "w") as f:
                f.write(body)
        written = draw_all(samples, os.path.join(tmp, "samples"))
        problems += expect(written, ["ops-n8192.png", "ops-n65536.png", "ratio-n65536.png"])
    for p in problems:
        print("self-test: " + p, file=sys.stderr)
    print("self-test: %s" % ("FAILED" if problems else "ok (%d ring degrees from %s)" % (len(ns), COMMITTED)))
    return 1 if problems else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("inputs", nargs="*", help="veil-bench JSON, peer text, compare.py JSON, chart data JSON")
    ap.add_argument("--out", default=".", help="folder for the PNGs (created if missing)")
    ap.add_argument("--prefix", default="", help="prefix of the PNG names, e.g. h200-")
    ap.add_argument("--ratio-n", type=int, default=65536, help="ring degree of the Veil cuda / peer chart")
    ap.add_argument("--self-test", action="store_true", help="draw the committed run into a temporary folder")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    if not args.inputs:
        ap.error("no input files (or --self-test)")
    for path in draw_all(args.inputs, args.out, args.prefix, args.ratio_n):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
