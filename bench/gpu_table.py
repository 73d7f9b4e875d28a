#!/usr/bin/env python3
"""GPU/CPU table from one veil-bench JSON run (any python3, standard library only).

    veil-bench --benchmark_filter='/65536' --benchmark_out=bench.json --benchmark_out_format=json
    python3 bench/gpu_table.py bench.json
    python3 bench/gpu_table.py bench.json other.json   # also: the cuda rows of both runs side by side

The second form compares two runs of the same rows, e.g. the cuda backend's two
key-switch modes (VEIL_CUDA_KEY_SWITCH=split|fused, tools/gpu/run_checks.sh's bench stage).

Pairs each cpu row "BM_<Op>/<N>" with its cuda row "BM_<Op>/<N>/cuda/manual_time" of the
same run (and "BM_<Op>/<N>/dnum5..." rows, the 2^16 preset's chain, with each other) and prints, as markdown: the wall-clock time of each (cpu rows are wall clock,
cuda rows CUDA-event time on device-resident data), the speed-up cpu / cuda, the
key-switching inner product's and the whole relinearization's achieved bandwidth
against the device's peak, one stream against two for independent work, and the
transfer rows. Exit status 1 when the file holds no cuda row.
"""
import json
import re
import sys

UNIT_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
ORDER = ["NTT", "INTT", "Encode", "Encrypt", "EncryptSecretKey", "EncryptValues", "Decrypt", "Add", "Mul",
         "MulRelin", "MulRelinRescale", "MulRelinRescaleTwoSteps", "Relin", "Rescale", "Rotate", "RotateHoisted8", "RotateMany8", "RelinMany8",
         "Bsgs16", "Bsgs16Classic", "KeySwitchInner",
         "KeySwitchApply"]
TARGETS = {"MulRelin": 50.0, "Rotate": 50.0}  # the brief: >= 50x the cpu path at N = 2^16


class Size(str):
    """A row's ring size as its name gives it: "65536", or "65536/dnum5" for another chain
    at that N; int(size) is N, and sizes sort by N, then by name."""

    def __int__(self):
        return int(self.split("/")[0])

    def __lt__(self, other):
        return (int(self), str(self)) < (int(other), str(other))


def ms(row):
    return row["real_time"] * UNIT_MS[row["time_unit"]]


def cuda_rows(path):
    """{name: row} of the cuda rows of one run."""
    with open(path) as f:
        data = json.load(f)
    return {row["name"]: row for row in data["benchmarks"]
            if "/cuda" in row["name"] and row.get("run_type") != "aggregate" and not row.get("error_occurred")}


def compare(path, other):
    """The cuda rows both runs have: time in each, and this run's time over the other's."""
    mine, theirs = cuda_rows(path), cuda_rows(other)
    common = [name for name in mine if name in theirs]
    if not common:
        print("no cuda row of %s is in %s" % (path, other))
        return 1
    print("| row | %s (us) | %s (us) | first / second |" % (path, other))
    print("|---|---|---|---|")
    for name in common:
        a, b = ms(mine[name]) * 1e3, ms(theirs[name]) * 1e3
        print("| %s | %.1f | %.1f | %.2fx |" % (name.replace("/manual_time", ""), a, b, a / b))
    return 0


def main(path):
    with open(path) as f:
        data = json.load(f)
    cpu, gpu, transfers, pairs = {}, {}, [], {}
    for row in data["benchmarks"]:
        if row.get("run_type") == "aggregate" or row.get("error_occurred"):
            continue
        name = row["name"]
        m = re.fullmatch(r"BM_(\w+)/(\d+(?:/dnum\d+)?)", name)
        if m:
            cpu[(m.group(1), Size(m.group(2)))] = row
            continue
        m = re.fullmatch(r"BM_(\w+)/(\d+(?:/dnum\d+)?)/cuda/manual_time", name)
        if m:
            gpu[(m.group(1), Size(m.group(2)))] = row
            continue
        m = re.fullmatch(r"BM_MulRelinPair/(\d+)/cuda/(one_stream|two_streams)/manual_time", name)
        if m:
            pairs[(int(m.group(1)), m.group(2))] = row
            continue
        m = re.fullmatch(r"BM_(Upload|Download)/(\d+)/cuda", name)
        if m:
            transfers.append((m.group(1), int(m.group(2)), row))
    if not gpu:
        print("no cuda rows in %s (no device, or the cuda benchmarks failed)" % path)
        return 1

    ctx = data.get("context", {})
    print("Host: %s CPUs at %s MHz (Google Benchmark library built as %s); %s\n" % (
        ctx.get("num_cpus", "?"), ctx.get("mhz_per_cpu", "?"), ctx.get("library_build_type", "?"),
        ctx.get("date", "")))
    print("| operation | N | limbs | cpu (ms) | cuda (ms) | speed-up cpu/cuda |")
    print("|---|---|---|---|---|---|")
    ns = sorted({n for _, n in gpu})
    for n in ns:
        for op in ORDER:
            g = gpu.get((op, n))
            if g is None:
                continue
            c = cpu.get((op, n))
            limbs = int(g.get("limbs", 0))
            cms = "%.3f" % ms(c) if c else "-"
            speed = ms(c) / ms(g) if c else None
            note = ""
            if speed is not None and op in TARGETS and int(n) == 65536:
                note = " (target %.0fx: %s)" % (TARGETS[op], "met" if speed >= TARGETS[op] else "NOT met")
            print("| %s | %s | %d | %s | %.4f | %s%s |" % (
                op, n, limbs, cms, ms(g), "%.1fx" % speed if speed else "-", note))

    print("\nBandwidth bound (bytes that must move / achieved rate against the device's peak):\n")
    print("| operation | N | what must move | MB | cuda (us) | achieved GB/s | peak GB/s | achieved / peak |")
    print("|---|---|---|---|---|---|---|---|")
    moved = {"KeySwitchInner": "digits and key read once, two outputs written",
             "KeySwitchApply": "as KeySwitchInner (the decomposition is as large as the digits)",
             "Relin": "c0, c1, c2 and the key read once, two outputs written (the whole key switch)"}
    for n in ns:
        for op in ("KeySwitchInner", "KeySwitchApply", "Relin"):
            g = gpu.get((op, n))
            if not g or "bytes" not in g:
                continue
            achieved = g["bytes_per_second"] / 1e9
            peak = g.get("peak_GBps", 0.0)
            ratio = achieved / peak if peak else float("nan")
            verdict = "within 2x of the bound" if ratio >= 0.5 else "NOT within 2x"
            print("| %s | %s | %s | %.1f | %.1f | %.0f | %.0f | %.2f (%s) |" % (
                op, n, moved[op], g["bytes"] / 1e6, ms(g) * 1e3, achieved, peak, ratio, verdict))

    if pairs:
        print("\nTwo independent multiply+relinearize per iteration in one context: one stream "
              "vs two streams, wall clock of the pair:\n")
        print("| N | one stream (us) | two streams (us) | one / two |")
        print("|---|---|---|---|")
        for n in sorted({n for n, _ in pairs}):
            one, two = pairs.get((n, "one_stream")), pairs.get((n, "two_streams"))
            if one and two:
                print("| %d | %.1f | %.1f | %.2fx |" % (n, ms(one) * 1e3, ms(two) * 1e3, ms(one) / ms(two)))

    bursts = [(op, n) for n in ns for op in ("Add", "Rescale", "MulRelin", "Rotate")
              if (op + "Burst", n) in gpu or (op + "Graph", n) in gpu]
    if bursts:
        print("\nOne op alone (CUDA events around it) against %s ops issued back to back (per op), the "
              "host's time to issue one op, and the %s ops recorded as one CUDA graph and replayed (per op, "
              "no host work per op):\n" % ("16", "16"))
        print("| operation | N | alone (us) | in a burst (us/op) | host issue (us/op) | graph replay (us/op) | graph nodes per op |")
        print("|---|---|---|---|---|---|---|")
        nan = float("nan")
        for op, n in bursts:
            b, g, alone = gpu.get((op + "Burst", n)), gpu.get((op + "Graph", n)), gpu.get((op, n))
            print("| %s | %s | %.1f | %.1f | %.1f | %.1f | %.0f |" % (
                op, n, ms(alone) * 1e3 if alone else nan, ms(b) * 1e3 if b else nan,
                b.get("host_us_per_op", nan) if b else nan, ms(g) * 1e3 if g else nan,
                g.get("graph_nodes_per_op", nan) if g else nan))

    batches = [(batch, single, n) for n in ns for batch, single in (("RotateMany8", "Rotate"), ("RelinMany8", "Relin"))
               if (batch, n) in gpu and (single, n) in gpu]
    if batches:
        print("\nEight independent key switches in one batch (Evaluator::rotate_many / relinearize_many) "
              "against eight single ones:\n")
        print("| batch | N | batch (us) | 8 x single (us) | single / batch per op |")
        print("|---|---|---|---|---|")
        for batch, single, n in batches:
            t_batch, t_single = ms(gpu[(batch, n)]) * 1e3, ms(gpu[(single, n)]) * 1e3
            print("| %s | %s | %.1f | %.1f | %.2fx |" % (batch, n, t_batch, 8 * t_single, 8 * t_single / t_batch))

    chains = [(op, n, Size(n + "/dnum5")) for n in ns if "/" not in n for op in ORDER
              if (op, Size(n + "/dnum5")) in gpu and (op, n) in gpu]
    if chains:
        print("\nThe same operations on the 2^16 preset's chain (P 7 x 50 bits, dnum 5) against the "
              "peers' chain (P 5 x 60 bits, dnum 7), same Q (log Q 1420):\n")
        print("| operation | cpu dnum 7 (ms) | cpu dnum 5 (ms) | cuda dnum 7 (us) | cuda dnum 5 (us) | cuda dnum 7 / dnum 5 |")
        print("|---|---|---|---|---|---|")
        nan = float("nan")
        for op, n, d5 in chains:
            c7, c5 = cpu.get((op, n)), cpu.get((op, d5))
            g7, g5 = ms(gpu[(op, n)]) * 1e3, ms(gpu[(op, d5)]) * 1e3
            print("| %s | %.2f | %.2f | %.1f | %.1f | %.2fx |" % (
                op, ms(c7) if c7 else nan, ms(c5) if c5 else nan, g7, g5, g7 / g5))

    if transfers:
        print("\nTransfers of one top-level ciphertext (pageable host memory, wall clock):\n")
        print("| direction | N | MB | time (ms) | GB/s |")
        print("|---|---|---|---|---|")
        for kind, n, row in sorted(transfers, key=lambda t: (t[1], t[0])):
            rate = row.get("bytes_per_second", 0.0)
            mb = rate * ms(row) / 1e3 / 1e6
            print("| %s | %d | %.1f | %.3f | %.1f |" % (kind.lower(), n, mb, ms(row), rate / 1e9))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3:
        sys.exit(compare(sys.argv[1], sys.argv[2]))
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
