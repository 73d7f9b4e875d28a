#!/usr/bin/env python3
"""Compare Veil's CPU backend against Microsoft SEAL and OpenFHE (RNS-CKKS).

Requirements (this script installs nothing itself):

    pip install tenseal openfhe

  * tenseal exposes SEAL 4.x as ``tenseal.sealapi``;
  * openfhe is the official openfhe-python wheel. Its extension module is built
    for one CPython version (e.g. ``openfhe.cpython-310-*.so``) and needs numpy.
    If ``import openfhe`` fails under this interpreter, point
    ``--openfhe-python`` (or $VEIL_BENCH_OPENFHE_PYTHON) at an interpreter that
    can import it; the OpenFHE part then runs in that interpreter.
  * Veil: build/bin/veil-bench, else build-bench/bin/veil-bench (override with
    --veil-bench), run with --benchmark_format=json.

Usage:

    python3 bench/compare.py                         # N = 8192, 16384, 32768
    python3 bench/compare.py --sizes 16384 --json    # machine-readable output
    python3 bench/compare.py --sizes 8192,16384,32768,65536   # 65536: Veil only
    python3 bench/compare.py --markdown              # table for docs/benchmarks.md

Parameters (identical bit sizes in all three libraries; SEAL's
CoeffModulus::BFVDefault chains, 128-bit):

    N =  8192: Q {43, 43, 44, 44}         P {44}   scale 2^30
    N = 16384: Q {48, 48, 48, 49 x 5}     P {49}   scale 2^40
    N = 32768: Q {55 x 15}                P {56}   scale 2^40
    N = 65536: veil-bench's dnum-7 chain, Veil only (SEAL has no default chain)

One special prime means one prime per key-switching digit (dnum = number of Q
primes): SEAL always works that way; OpenFHE gets HYBRID key switching with
NumLargeDigits = number of Q primes (OpenFHE picks its own special primes), and
FIXEDMANUAL scaling so rescaling is explicit. OpenFHE needs FirstModSize >=
ScalingModSize, so its Q chain is FirstModSize = max(q_0, s) and ScalingModSize =
s = round(mean of q_1..q_L) bits (within a few bits of the others in total).

Methodology:

  * Every operation runs on top-level (L+1 limbs) ciphertexts with fully packed
    slots; the operands are prepared once per N, outside the timed region.
  * SEAL and OpenFHE: each call is timed with time.perf_counter(); after two
    warm-up calls, calls are repeated until --min-time seconds (and at least 5
    calls) have passed; the reported figure is the median per-call time.
    Python adds roughly 1 microsecond of call overhead per call: negligible for
    millisecond operations, visible only for add at N = 8192. SEAL/OpenFHE
    encode include pybind11's conversion of the Python list of N/2 floats
    (reported separately for SEAL as "list_conversion_ms" in --json).
  * Veil: Google Benchmark with --benchmark_min_time and --benchmark_repetitions;
    the median repetition's real (wall-clock) time is reported.
  * Threads: SEAL is single-threaded. Veil and OpenFHE use OpenMP; --threads
    (default 1, for a like-for-like comparison) sets OMP_NUM_THREADS for both.
    --threads 0 leaves OMP_NUM_THREADS alone.
  * Operation mapping (Veil / SEAL / OpenFHE):
      ntt, intt     BM_NTT, BM_INTT: one polynomial, L+1 limbs /
                    Evaluator.transform_{to,from}_ntt_inplace on a size-2
                    ciphertext, halved / n/a (not exposed by openfhe-python)
      encode        Encoder::encode / CKKSEncoder.encode / MakeCKKSPackedPlaintext
      encrypt       public key / Encryptor(pk).encrypt / Encrypt(publicKey, pt)
      decrypt       Decryptor::decrypt / Decryptor.decrypt /
                    Decrypt(secretKey, ct), which in OpenFHE includes decoding
      add           add / add / EvalAdd
      mul           multiply_no_relin / multiply / EvalMultNoRelin
      mul_relin     multiply / multiply + relinearize_inplace / EvalMult
      relin         relinearize / relinearize / Relinearize
      rescale       rescale / rescale_to_next / Rescale (ModReduce)
      rotate        rotate by 1 / rotate_vector(1) / EvalRotate(1)
      rotate_x8     rotate_hoisted, steps 1..8 / 8 x rotate_vector (SEAL has no
                    hoisting) / EvalFastRotationPrecompute + 8 x EvalFastRotation
  * Only the Galois keys for steps 1..8 are generated, in every library.
"""

import argparse
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# Bit sizes: q_0..q_L, then the special prime(s); scale as log2.
CHAINS = {
    8192: {"q": [43, 43, 44, 44], "p": [44], "log_scale": 30},
    16384: {"q": [48, 48, 48, 49, 49, 49, 49, 49], "p": [49], "log_scale": 40},
    32768: {"q": [55] * 15, "p": [56], "log_scale": 40},
    # 65536: Veil only (veil-bench's dnum-7 chain: Q {60, 40 x 34}, P {60 x 5}).
}

OPS = [
    ("ntt", "NTT (1 poly, L+1 limbs)", "BM_NTT"),
    ("intt", "INTT (1 poly, L+1 limbs)", "BM_INTT"),
    ("encode", "encode", "BM_Encode"),
    ("encrypt", "encrypt (public key)", "BM_Encrypt"),
    ("decrypt", "decrypt", "BM_Decrypt"),
    ("add", "add", "BM_Add"),
    ("mul", "multiply (no relin)", "BM_Mul"),
    ("mul_relin", "multiply + relin", "BM_MulRelin"),
    ("relin", "relinearize", "BM_Relin"),
    ("rescale", "rescale", "BM_Rescale"),
    ("rotate", "rotate (1 step)", "BM_Rotate"),
    ("rotate_x8", "rotate x8 (hoisted)", "BM_RotateHoisted8"),
]
HOIST_STEPS = list(range(1, 9))
TIME_UNIT_TO_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


# ---------------------------------------------------------------- timing ----

def time_call(fn, min_time, min_samples=5, warmup=2, max_samples=100000):
    """Median wall-clock milliseconds per call of fn()."""
    for _ in range(warmup):
        fn()
    samples = []
    pc = time.perf_counter
    start = pc()
    while len(samples) < min_samples or (pc() - start) < min_time:
        t0 = pc()
        fn()
        samples.append(pc() - t0)
        if len(samples) >= max_samples:
            break
    return statistics.median(samples) * 1e3


def time_pair(first, second, min_time, min_samples=5, warmup=2):
    """Median ms of first() and of second(), called alternately (e.g. INTT then NTT)."""
    for _ in range(warmup):
        first()
        second()
    a, b = [], []
    pc = time.perf_counter
    start = pc()
    while len(a) < min_samples or (pc() - start) < min_time:
        t0 = pc()
        first()
        t1 = pc()
        second()
        t2 = pc()
        a.append(t1 - t0)
        b.append(t2 - t1)
    return statistics.median(a) * 1e3, statistics.median(b) * 1e3


def guarded(results, errors, key, thunk):
    try:
        results[key] = thunk()
    except Exception as exc:  # an op missing from this library version: n/a
        results[key] = None
        errors[key] = f"{type(exc).__name__}: {exc}"


def random_values(count, seed):
    import random
    rng = random.Random(seed)
    return [rng.uniform(-1.0, 1.0) for _ in range(count)]


# ------------------------------------------------------------------ SEAL ----

def seal_version(seal):
    """SEAL's version as written in its serialization header (bytes 3 and 4)."""
    import tempfile
    try:
        parms = seal.EncryptionParameters(seal.SCHEME_TYPE.CKKS)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "parms.bin")
            parms.save(path)
            with open(path, "rb") as f:
                head = f.read(5)
        if head[:2] == b"\x5e\xa1":
            return f"{head[3]}.{head[4]}"
    except Exception:
        pass
    return "4.x"


def run_seal(sizes, min_time):
    import tenseal
    import tenseal.sealapi as seal

    out = {"library": "SEAL", "version": f"SEAL {seal_version(seal)} via tenseal {tenseal.__version__} (sealapi)",
           "results": {}, "errors": {}, "moduli_bits": {}, "extra": {}}
    for n in sizes:
        chain = CHAINS.get(n)
        if chain is None:
            continue
        res, err = {}, {}
        parms = seal.EncryptionParameters(seal.SCHEME_TYPE.CKKS)
        parms.set_poly_modulus_degree(n)
        parms.set_coeff_modulus(seal.CoeffModulus.Create(n, chain["q"] + chain["p"]))
        ctx = seal.SEALContext(parms, True, seal.SEC_LEVEL_TYPE.TC128)
        if not ctx.parameters_set():
            raise RuntimeError(f"SEAL rejected the parameters for N={n}")
        out["moduli_bits"][n] = [round(math.log2(m.value()), 2)
                                 for m in ctx.key_context_data().parms().coeff_modulus()]
        scale = 2.0 ** chain["log_scale"]
        keygen = seal.KeyGenerator(ctx)
        pk, rk, gk = seal.PublicKey(), seal.RelinKeys(), seal.GaloisKeys()
        keygen.create_public_key(pk)
        keygen.create_relin_keys(rk)
        # This binding's list overload takes Galois elements: left rotation by k is 3^k mod 2N.
        keygen.create_galois_keys([pow(3, k, 2 * n) for k in HOIST_STEPS], gk)
        encoder = seal.CKKSEncoder(ctx)
        encryptor = seal.Encryptor(ctx, pk)
        decryptor = seal.Decryptor(ctx, keygen.secret_key())
        ev = seal.Evaluator(ctx)

        values = random_values(n // 2, n)
        pt = seal.Plaintext()
        encoder.encode(values, scale, pt)
        pt_b = seal.Plaintext()
        encoder.encode(random_values(n // 2, n + 1), scale, pt_b)
        ct_a, ct_b = seal.Ciphertext(ctx), seal.Ciphertext(ctx)
        encryptor.encrypt(pt, ct_a)
        encryptor.encrypt(pt_b, ct_b)
        ct3 = seal.Ciphertext(ctx)
        ev.multiply(ct_a, ct_b, ct3)
        prod = seal.Ciphertext(ctx)
        ev.relinearize(ct3, rk, prod)

        def ntt_pair():
            work = seal.Ciphertext(ctx)  # size 2: two polynomials of L+1 limbs
            encryptor.encrypt(pt, work)
            intt_ms, ntt_ms = time_pair(lambda: ev.transform_from_ntt_inplace(work),
                                        lambda: ev.transform_to_ntt_inplace(work), min_time)
            return intt_ms / 2, ntt_ms / 2  # per polynomial
        try:
            res["intt"], res["ntt"] = ntt_pair()
        except Exception as exc:
            res["intt"] = res["ntt"] = None
            err["ntt"] = err["intt"] = f"{type(exc).__name__}: {exc}"

        dst_pt = seal.Plaintext()
        dst = seal.Ciphertext(ctx)
        guarded(res, err, "encode", lambda: time_call(lambda: encoder.encode(values, scale, dst_pt), min_time))
        guarded(res, err, "encrypt", lambda: time_call(lambda: encryptor.encrypt(pt, dst), min_time))
        guarded(res, err, "decrypt", lambda: time_call(lambda: decryptor.decrypt(ct_a, dst_pt), min_time))
        guarded(res, err, "add", lambda: time_call(lambda: ev.add(ct_a, ct_b, dst), min_time))
        guarded(res, err, "mul", lambda: time_call(lambda: ev.multiply(ct_a, ct_b, dst), min_time))

        def mul_relin():
            ev.multiply(ct_a, ct_b, dst)
            ev.relinearize_inplace(dst, rk)
        guarded(res, err, "mul_relin", lambda: time_call(mul_relin, min_time))
        guarded(res, err, "relin", lambda: time_call(lambda: ev.relinearize(ct3, rk, dst), min_time))
        guarded(res, err, "rescale", lambda: time_call(lambda: ev.rescale_to_next(prod, dst), min_time))
        guarded(res, err, "rotate", lambda: time_call(lambda: ev.rotate_vector(ct_a, 1, gk, dst), min_time))
        outs = [seal.Ciphertext(ctx) for _ in HOIST_STEPS]

        def rot8():
            for k, o in zip(HOIST_STEPS, outs):
                ev.rotate_vector(ct_a, k, gk, o)
        guarded(res, err, "rotate_x8", lambda: time_call(rot8, min_time))
        # Cost of converting the Python list in encode(): SEAL pads a short input with
        # zeros and still runs the full transform, so the difference is the conversion.
        try:
            short = time_call(lambda: encoder.encode(values[:1], scale, dst_pt), min_time)
            if res.get("encode") is not None:
                out["extra"].setdefault(n, {})["list_conversion_ms"] = max(0.0, res["encode"] - short)
        except Exception:
            pass
        out["results"][n] = res
        if err:
            out["errors"][n] = err
        del gk, rk, pk, keygen, ctx
    return out


# --------------------------------------------------------------- OpenFHE ----

def openfhe_chain(chain):
    q = chain["q"]
    scaling = round(statistics.mean(q[1:])) if len(q) > 1 else q[0]
    return max(q[0], scaling), scaling, len(q) - 1


def import_openfhe():
    try:
        import openfhe
        return openfhe
    except ImportError as exc:
        # A common failure: the wheel's extension was built for another CPython.
        import glob
        import importlib.util
        hint = ""
        try:
            spec = importlib.util.find_spec("openfhe")
            if spec and spec.submodule_search_locations:
                exts = [os.path.basename(p) for loc in spec.submodule_search_locations
                        for p in glob.glob(os.path.join(loc, "openfhe*.so"))]
                if exts:
                    hint = (f" (installed extension: {', '.join(exts)}; this is Python "
                            f"{sys.version_info.major}.{sys.version_info.minor}: pass --openfhe-python "
                            "with a matching interpreter that also has numpy)")
        except Exception:
            pass
        raise ImportError(f"{exc}{hint}") from None


def run_openfhe(sizes, min_time):
    ofhe = import_openfhe()

    out = {"library": "OpenFHE", "version": f"openfhe-python {getattr(ofhe, '__version__', '?')}",
           "results": {}, "errors": {}, "moduli_bits": {}, "extra": {}}
    for n in sizes:
        chain = CHAINS.get(n)
        if chain is None:
            continue
        res, err = {}, {}
        first, scaling, depth = openfhe_chain(chain)
        params = ofhe.CCParamsCKKSRNS()
        params.SetRingDim(n)
        params.SetSecurityLevel(ofhe.HEStd_NotSet)  # force N; the chain itself is 128-bit sized
        params.SetMultiplicativeDepth(depth)
        params.SetFirstModSize(first)
        params.SetScalingModSize(scaling)
        params.SetKeySwitchTechnique(ofhe.HYBRID)
        params.SetNumLargeDigits(depth + 1)  # = Veil's dnum with one special prime
        params.SetScalingTechnique(ofhe.FIXEDMANUAL)
        params.SetBatchSize(n // 2)
        cc = ofhe.GenCryptoContext(params)
        for feature in (ofhe.PKE, ofhe.KEYSWITCH, ofhe.LEVELEDSHE):
            cc.Enable(feature)
        if cc.GetRingDimension() != n:
            raise RuntimeError(f"OpenFHE chose ring dimension {cc.GetRingDimension()} instead of {n}")
        q_bits = [first] + [scaling] * depth
        try:
            log_q = math.log2(float(cc.GetModulus()))
        except Exception:
            log_q = None
        out["moduli_bits"][n] = {"q_bits_requested": q_bits, "log2_Q": round(log_q, 1) if log_q else None,
                                 "P": "chosen by OpenFHE (HYBRID, NumLargeDigits=%d)" % (depth + 1)}
        keys = cc.KeyGen()
        cc.EvalMultKeyGen(keys.secretKey)
        cc.EvalRotateKeyGen(keys.secretKey, HOIST_STEPS)

        values = random_values(n // 2, n)
        pt = cc.MakeCKKSPackedPlaintext(values)
        ct_a = cc.Encrypt(keys.publicKey, pt)
        ct_b = cc.Encrypt(keys.publicKey, cc.MakeCKKSPackedPlaintext(random_values(n // 2, n + 1)))
        ct3 = cc.EvalMultNoRelin(ct_a, ct_b)
        prod = cc.Relinearize(ct3)

        res["ntt"] = res["intt"] = None
        err["ntt"] = err["intt"] = "NTT is not exposed by openfhe-python"
        guarded(res, err, "encode", lambda: time_call(lambda: cc.MakeCKKSPackedPlaintext(values), min_time))
        guarded(res, err, "encrypt", lambda: time_call(lambda: cc.Encrypt(keys.publicKey, pt), min_time))
        guarded(res, err, "decrypt", lambda: time_call(lambda: cc.Decrypt(keys.secretKey, ct_a), min_time))
        guarded(res, err, "add", lambda: time_call(lambda: cc.EvalAdd(ct_a, ct_b), min_time))
        guarded(res, err, "mul", lambda: time_call(lambda: cc.EvalMultNoRelin(ct_a, ct_b), min_time))
        guarded(res, err, "mul_relin", lambda: time_call(lambda: cc.EvalMult(ct_a, ct_b), min_time))
        guarded(res, err, "relin", lambda: time_call(lambda: cc.Relinearize(ct3), min_time))
        if hasattr(cc, "Rescale"):
            guarded(res, err, "rescale", lambda: time_call(lambda: cc.Rescale(prod), min_time))
        else:
            guarded(res, err, "rescale", lambda: time_call(lambda: cc.ModReduce(prod), min_time))
        guarded(res, err, "rotate", lambda: time_call(lambda: cc.EvalRotate(ct_a, 1), min_time))
        m = 2 * n

        def rot8():
            digits = cc.EvalFastRotationPrecompute(ct_a)
            return [cc.EvalFastRotation(ct_a, k, m, digits) for k in HOIST_STEPS]
        guarded(res, err, "rotate_x8", lambda: time_call(rot8, min_time))
        out["results"][n] = res
        if err:
            out["errors"][n] = err
        del keys, cc
    return out


# ------------------------------------------------------------------ Veil ----

def run_veil(exe, sizes, min_time, repetitions, env):
    if not os.path.isfile(exe) or not os.access(exe, os.X_OK):
        return {"library": "Veil", "error": f"{exe} not found (build the veil-bench target)", "results": {}}
    pattern = "/(" + "|".join(str(n) for n in sizes) + ")$"
    cmd = [exe, "--benchmark_format=json", f"--benchmark_filter={pattern}",
           f"--benchmark_min_time={min_time}", f"--benchmark_repetitions={repetitions}",
           "--benchmark_report_aggregates_only=true"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"library": "Veil", "error": str(exc), "results": {}}
    if proc.returncode != 0:
        return {"library": "Veil", "error": f"veil-bench exited {proc.returncode}: {proc.stderr[-2000:]}",
                "results": {}}
    data = json.loads(proc.stdout)
    by_name = {}
    for b in data.get("benchmarks", []):
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        name = b.get("run_name", b["name"])
        ms = b["real_time"] * TIME_UNIT_TO_MS[b.get("time_unit", "ns")]
        by_name[name] = {"ms": ms, "limbs": b.get("limbs"), "dnum": b.get("dnum"), "alpha": b.get("alpha")}
    results, shape = {}, {}
    for n in sizes:
        res = {}
        for key, _, bm in OPS:
            entry = by_name.get(f"{bm}/{n}")
            res[key] = entry["ms"] if entry else None
            if entry and n not in shape:
                shape[n] = {"limbs": entry["limbs"], "alpha": entry["alpha"], "dnum": entry["dnum"]}
        results[n] = res
    return {"library": "Veil", "results": results, "shape": shape, "context": data.get("context", {})}


# ---------------------------------------------------------------- driver ----

def run_worker_subprocess(lib, python, sizes, args, env):
    cmd = [python, os.path.abspath(__file__), "--worker", lib,
           "--sizes", ",".join(map(str, sizes)), "--min-time", str(args.min_time)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"library": lib, "error": str(exc), "results": {}}
    try:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"library": lib, "error": f"worker exited {proc.returncode}: {proc.stderr.strip()[-1500:]}",
                "results": {}}
    out["python"] = python
    return out


def worker_main(lib, sizes, min_time):
    try:
        out = run_seal(sizes, min_time) if lib == "seal" else run_openfhe(sizes, min_time)
    except Exception as exc:
        out = {"library": lib, "error": f"{type(exc).__name__}: {exc}", "results": {}}
    # JSON object keys must be strings.
    for field in ("results", "errors", "moduli_bits", "extra"):
        if field in out:
            out[field] = {str(k): v for k, v in out[field].items()}
    print(json.dumps(out))


def normalize(lib_out):
    lib_out["results"] = {int(k): v for k, v in lib_out.get("results", {}).items()}
    for field in ("errors", "moduli_bits", "extra", "shape"):
        if field in lib_out:
            lib_out[field] = {int(k): v for k, v in lib_out[field].items()}
    return lib_out


def fmt_ms(v):
    if v is None:
        return "n/a"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def fmt_ratio(a, b):
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def veil_revision():
    try:
        rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "host", "include"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("+local changes in host/ or include/" if dirty else "") if rev else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build_rows(sizes, veil, seal, ofhe):
    rows = []
    for n in sizes:
        for key, label, _ in OPS:
            v = veil["results"].get(n, {}).get(key)
            s = seal["results"].get(n, {}).get(key)
            o = ofhe["results"].get(n, {}).get(key)
            rows.append({"op": key, "label": label, "N": n, "veil_ms": v, "seal_ms": s, "openfhe_ms": o,
                         "veil_over_seal": (v / s) if v is not None and s else None,
                         "veil_over_openfhe": (v / o) if v is not None and o else None})
    return rows


def merge_reports(paths):
    """Per-cell median of the rows of several saved --json reports."""
    reports = []
    for path in paths:
        with open(path) as f:
            reports.append(json.load(f)["rows"])
    merged = []
    for i, row in enumerate(reports[0]):
        out = dict(row)
        for col in ("veil_ms", "seal_ms", "openfhe_ms"):
            vals = [r[i][col] for r in reports
                    if i < len(r) and r[i]["op"] == row["op"] and r[i]["N"] == row["N"] and r[i][col] is not None]
            out[col] = statistics.median(vals) if vals else None
        v = out["veil_ms"]
        out["veil_over_seal"] = v / out["seal_ms"] if v is not None and out["seal_ms"] else None
        out["veil_over_openfhe"] = v / out["openfhe_ms"] if v is not None and out["openfhe_ms"] else None
        merged.append(out)
    return merged


def print_table(rows, markdown):
    header = ["op", "N", "Veil ms", "SEAL ms", "OpenFHE ms", "Veil/SEAL", "Veil/OpenFHE"]
    body = [[r["label"], str(r["N"]), fmt_ms(r["veil_ms"]), fmt_ms(r["seal_ms"]), fmt_ms(r["openfhe_ms"]),
             fmt_ratio(r["veil_ms"], r["seal_ms"]), fmt_ratio(r["veil_ms"], r["openfhe_ms"])] for r in rows]
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
        for line in body:
            print("| " + " | ".join(line) + " |")
        return
    widths = [max(len(header[i]), *(len(line[i]) for line in body)) for i in range(len(header))]
    print("  ".join(h.ljust(widths[i]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(header)))
    print("  ".join("-" * w for w in widths))
    last_n = None
    for line in body:
        if last_n is not None and line[1] != last_n:
            print()
        last_n = line[1]
        print("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(line)))


def main():
    if hasattr(signal, "SIGPIPE"):  # `compare.py | head` should not print a traceback
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="8192,16384,32768",
                    help="comma-separated ring degrees (8192,16384,32768; 65536 runs Veil only)")
    ap.add_argument("--veil-bench", default=None,
                    help="path to the veil-bench executable (default: build/bin/veil-bench, "
                         "else build-bench/bin/veil-bench)")
    ap.add_argument("--min-time", type=float, default=0.2,
                    help="seconds per operation (per Google Benchmark repetition for Veil)")
    ap.add_argument("--repetitions", type=int, default=3, help="Google Benchmark repetitions for Veil (median)")
    ap.add_argument("--threads", type=int, default=1,
                    help="OMP_NUM_THREADS for Veil and OpenFHE (SEAL is single-threaded); 0: leave unset")
    ap.add_argument("--seal-python", default=os.environ.get("VEIL_BENCH_SEAL_PYTHON", sys.executable),
                    help="interpreter that can import tenseal")
    ap.add_argument("--openfhe-python", default=os.environ.get("VEIL_BENCH_OPENFHE_PYTHON", sys.executable),
                    help="interpreter that can import openfhe")
    ap.add_argument("--skip", default="", help="comma-separated libraries to skip: veil,seal,openfhe")
    ap.add_argument("--json", action="store_true", help="print machine-readable JSON")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--load", metavar="FILE", nargs="+",
                    help="print the table of report(s) saved earlier with --json (runs nothing); "
                         "with several files, each cell is the median over the files")
    ap.add_argument("--worker", choices=["seal", "openfhe"], help=argparse.SUPPRESS)
    args = ap.parse_args()

    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        ap.error("--sizes takes comma-separated integers")
    if args.worker:
        worker_main(args.worker, sizes, args.min_time)
        return 0
    if args.load:
        rows = merge_reports(args.load)
        if args.json:
            print(json.dumps({"merged_from": args.load, "rows": rows}, indent=2))
        else:
            print_table(rows, args.markdown)
        return 0

    for n in sizes:
        if n not in CHAINS and n != 65536:
            ap.error(f"unsupported N = {n} (choose from 8192, 16384, 32768, 65536)")
    if args.veil_bench is None:
        candidates = [os.path.join(REPO, d, "bin", "veil-bench") for d in ("build", "build-bench")]
        args.veil_bench = next((c for c in candidates if os.access(c, os.X_OK)), candidates[0])
    skip = {s.strip().lower() for s in args.skip.split(",") if s.strip()}
    env = dict(os.environ)
    if args.threads > 0:
        env["OMP_NUM_THREADS"] = str(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if load is not None and load > 0.5:
        print(f"warning: 1-minute load average is {load:.2f}; other processes will disturb the timings",
              file=sys.stderr)

    def log(msg):
        if not args.json:
            print(msg, file=sys.stderr, flush=True)

    t0 = time.time()
    log("running Veil (veil-bench) ...")
    veil = run_veil(args.veil_bench, sizes, args.min_time, args.repetitions, env) if "veil" not in skip \
        else {"library": "Veil", "error": "skipped", "results": {}}
    peer_sizes = [n for n in sizes if n in CHAINS]
    log("running SEAL (tenseal.sealapi) ...")
    seal = run_worker_subprocess("seal", args.seal_python, peer_sizes, args, env) \
        if "seal" not in skip and peer_sizes else {"library": "SEAL", "error": "skipped", "results": {}}
    log("running OpenFHE ...")
    ofhe = run_worker_subprocess("openfhe", args.openfhe_python, peer_sizes, args, env) \
        if "openfhe" not in skip and peer_sizes else {"library": "OpenFHE", "error": "skipped", "results": {}}
    for lib in (veil, seal, ofhe):
        normalize(lib)
        if lib.get("error") and lib["error"] != "skipped":
            print(f"note: {lib['library']} unavailable: {lib['error']}", file=sys.stderr)
    rows = build_rows(sizes, veil, seal, ofhe)

    if args.json:
        report = {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "machine": {"platform": platform.platform(), "cpu": cpu_model(),
                        "cpu_count": os.cpu_count(), "load_avg_1min": load},
            "veil_revision": veil_revision(),
            "threads": args.threads if args.threads > 0 else env.get("OMP_NUM_THREADS"),
            "min_time_s": args.min_time,
            "chains": {str(n): CHAINS[n] for n in peer_sizes},
            "libraries": {lib["library"]: {k: v for k, v in lib.items() if k not in ("results", "context")}
                          for lib in (veil, seal, ofhe)},
            "rows": rows,
            "elapsed_s": round(time.time() - t0, 1),
        }
        print(json.dumps(report, indent=2, default=str))
    else:
        print_table(rows, args.markdown)
        for lib in (seal, ofhe):
            for n, errs in lib.get("errors", {}).items():
                for op, msg in errs.items():
                    print(f"  {lib['library']} N={n} {op}: n/a ({msg})", file=sys.stderr)
        log(f"done in {time.time() - t0:.0f} s (threads: {env.get('OMP_NUM_THREADS', 'default')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
