#!/usr/bin/python3
"""Distil the molecule teachers into FHE-friendly students and export them to ONNX.

Needs Debian's /usr/bin/python3 with python3-torch (1.13), python3-onnx, python3-rdkit,
python3-scipy, python3-sklearn and numpy, and the cache of tools/molecules/dataset.py (built
on demand). Run from the repository root (2 cores, about 10 minutes in all):

    /usr/bin/python3 tools/molecules/train.py                 # everything below
    /usr/bin/python3 tools/molecules/train.py --only small    # the 5 small students only
    /usr/bin/python3 tools/molecules/train.py --only original # the SA original-shape student
    /usr/bin/python3 tools/molecules/train.py --only baseline # gradient boosting only
    /usr/bin/python3 tools/molecules/train.py --no-baseline   # skip gradient boosting

No network access; fixed seeds (SEED + the property's index), deterministic on one machine
(torch.use_deterministic_algorithms, 2 threads). Speed: Debian's torch uses the system
libblas.so.3; with netlib's reference BLAS (the default alternative) training is ~10x
slower. When build-molecules/openblas holds Debian's libopenblas0-pthread, unpacked without
installing it:

    dpkg-deb -x /var/cache/apt/archives/libopenblas0-pthread_0.3.21+ds-4_amd64.deb build-molecules/openblas

the script re-executes itself with that OpenBLAS first on LD_LIBRARY_PATH (2 threads); the
committed files were made that way (with another BLAS the last bits, hence the early-stopping
epochs, may differ).

Students (one per property, input the 1x32x32 featurizer image, output the property in its
own units; only Conv / Gemm / x*x in the exported graph):
* small:    conv 1->8 k3 s3 (8x10x10) -> x*x -> flatten (800) -> Linear 800->64 -> BN ->
            x*x -> Linear 64->1
* original: conv 1->32 k3 s3 (32x10x10) -> x*x -> flatten (3200) -> Linear 3200->512 ->
            BN -> x*x -> Linear 512->256 -> BN -> x*x -> Linear 256->1   (SA only)
(the k3 stride-3 conv reads rows and columns 0..29 of the image; the layout puts the 124
rarest bins on rows / columns 30 and 31). Trained on the teacher's values standardized with
the train split's mean and std (MSE, Adam, weight decay 1e-4, batch 128, 30% dropout on the
input pixels, LR halved on plateaus, early stopping on the validation MSE, best epoch kept)
with a small penalty (1e-3) on the mean square of every pre-activation, so the values that
reach x*x stay within a few units (the largest over the test split is printed).
Baseline (not FHE): scikit-learn HistGradientBoostingRegressor (300 iterations, 63 leaves)
on the raw 1024 counts, same split. Before export each BatchNorm (eval mode) is folded into the conv / linear layer
before it and the de-standardization (y * std + mean) into the last Linear, so the ONNX graph
is Conv, Mul(x, x), Flatten, Gemm only.

Writes:
* tests/data/molecules/<property>_small.onnx for sa, np, logp, tpsa, qed (each <= 1 MB).
* build-molecules/sa_original.onnx (about 7 MB, not committed).
* tests/data/molecules/test_split.csv: 300 test molecules (evenly spaced over the test split
  in cache order): SMILES, the 5 teacher values and each small student's float64 prediction
  computed by a numpy float64 evaluation of the exported ONNX file (its float32 weights).
* build-molecules/results.json: metrics (R^2, MAE) on the whole test split and on the 300.
"""
import argparse
import copy
import csv
import json
import os
import sys
import time

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dataset  # noqa: E402
import featurizer  # noqa: E402

SEED = 20261205
THREADS = 2
BATCH = 128
MAX_FILE_BYTES = 1 << 20
N_TEST_FILE = 300
DATA_DIR = featurizer.DATA_DIR
CACHE_DIR = dataset.CACHE_DIR
UNITS = {"sa": "score 1..10", "np": "score", "logp": "log units", "tpsa": "A^2", "qed": "0..1"}

# Student options: no BatchNorm after the conv (on the sparse image it divides by tiny
# running deviations and explodes on unseen scaffolds), the conv's initial weights x3 (so
# x*x does not start in its flat part), BatchNorm after the hidden linear layers, 30% input
# dropout (bins dropped at random: the polynomial then extrapolates less wildly to the rare
# scaffolds of the test split).
STUDENT = dict(conv_bn=False, hidden_bn=True, gain=3.0, in_drop=0.3)
SHAPES = {
    "small": dict(channels=8, hidden=[64], lr=2e-3, wd=1e-4, max_epochs=80, patience=15,
                  penalty=1e-3, student=STUDENT),
    "original": dict(channels=32, hidden=[512, 256], lr=1e-3, wd=1e-4, max_epochs=60,
                     patience=8, penalty=1e-3, student=STUDENT),
}
OPENBLAS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build-molecules",
                        "openblas", "usr", "lib", "x86_64-linux-gnu", "openblas-pthread")


class Square(nn.Module):
    def forward(self, x):
        return x * x


class Student(nn.Module):
    """conv(1->c, k3, s3) -> BN -> x*x -> flatten -> [Linear -> BN -> x*x]* -> Linear(->1)."""

    def __init__(self, channels, hidden, conv_bn=True, hidden_bn=True, gain=1.0, in_drop=0.0, bias=None):
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 3, stride=3)
        with torch.no_grad():
            self.conv.weight.mul_(gain)
            if bias is not None:
                self.conv.bias.fill_(bias)
        self.conv_bn = nn.BatchNorm2d(channels) if conv_bn else nn.Identity()
        sizes = [channels * 10 * 10] + hidden
        self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.bns = nn.ModuleList((nn.BatchNorm1d(b) if hidden_bn else nn.Identity()) for b in hidden)
        self.out = nn.Linear(sizes[-1], 1)
        self.drop = nn.Dropout(in_drop) if in_drop > 0 else nn.Identity()

    def forward(self, x, pre=None):
        h = self.conv_bn(self.conv(self.drop(x)))
        if pre is not None:
            pre.append(h)
        h = (h * h).flatten(1)
        for fc, bn in zip(self.fcs, self.bns):
            h = bn(fc(h))
            if pre is not None:
                pre.append(h)
            h = h * h
        return self.out(h).squeeze(1)

    def folded(self, mean, std):
        """The eval-mode export graph: BNs folded, output de-standardized."""
        m = copy.deepcopy(self).eval()
        def fuse(layer, bn, how):
            return layer if isinstance(bn, nn.Identity) else how(layer, bn)
        layers = [fuse(m.conv, m.conv_bn, fuse_conv_bn_eval), Square(), nn.Flatten()]
        for fc, bn in zip(m.fcs, m.bns):
            layers += [fuse(fc, bn, fuse_linear_bn_eval), Square()]
        out = copy.deepcopy(m.out)
        with torch.no_grad():
            out.weight.mul_(std)
            out.bias.mul_(std).add_(mean)
        layers.append(out)
        return nn.Sequential(*layers).eval()


def r2_mae(y, p):
    y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
    ss_res = ((y - p) ** 2).sum()
    ss_tot = ((y - y.mean()) ** 2).sum()
    return float(1 - ss_res / ss_tot), float(np.abs(y - p).mean())


def onnx_forward(path, images):
    """float64 numpy evaluation of an exported student (Conv, Mul, Flatten, Gemm/MatMul/Add)."""
    model = onnx.load(path)
    g = model.graph
    vals = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in g.initializer}
    vals[g.input[0].name] = np.asarray(images, np.float64)
    for node in g.node:
        a = {x.name: onnx.helper.get_attribute_value(x) for x in node.attribute}
        ins = [vals[i] for i in node.input]
        if node.op_type == "Conv":
            x, w = ins[0], ins[1]
            k, s = w.shape[2], a.get("strides", [1, 1])[0]
            assert list(a.get("pads", [0, 0, 0, 0])) == [0, 0, 0, 0] and a.get("group", 1) == 1
            n, c, h, wd = x.shape
            oh, ow = (h - k) // s + 1, (wd - k) // s + 1
            cols = np.empty((n, c, k, k, oh, ow))
            for i in range(k):
                for j in range(k):
                    cols[:, :, i, j] = x[:, :, i:i + s * oh:s, j:j + s * ow:s]
            y = np.einsum("nckluv,ockl->nouv", cols, w)
            if len(ins) > 2:
                y = y + ins[2][None, :, None, None]
        elif node.op_type == "Mul":
            y = ins[0] * ins[1]
        elif node.op_type == "Flatten":
            y = ins[0].reshape(ins[0].shape[0], -1)
        elif node.op_type == "Gemm":
            w = ins[1].T if a.get("transB", 0) else ins[1]
            y = a.get("alpha", 1.0) * ins[0] @ w
            if len(ins) > 2:
                y = y + a.get("beta", 1.0) * ins[2]
        elif node.op_type == "MatMul":
            y = ins[0] @ ins[1]
        elif node.op_type == "Add":
            y = ins[0] + ins[1]
        else:
            raise ValueError(f"{path}: unexpected node {node.op_type}")
        vals[node.output[0]] = y
    return vals[g.output[0].name].reshape(-1)


def train_student(prop, shape, X, y, split, seed):
    cfg = SHAPES[shape]
    lr, wd, max_epochs, patience, penalty = (cfg[k] for k in ("lr", "wd", "max_epochs", "patience", "penalty"))
    torch.manual_seed(seed)
    np.random.seed(seed)
    tr, va = split == "train", split == "valid"
    mean, std = float(y[tr].mean()), float(y[tr].std())
    z = ((y - mean) / std).astype(np.float32)
    Xt = torch.from_numpy(X)
    zt = torch.from_numpy(z)
    tr_idx = torch.from_numpy(np.flatnonzero(tr))
    va_idx = torch.from_numpy(np.flatnonzero(va))
    model = Student(cfg["channels"], cfg["hidden"], **cfg["student"])
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=patience // 3)
    gen = torch.Generator().manual_seed(seed)
    best, best_state, best_epoch, bad = float("inf"), None, -1, 0
    t0 = time.time()
    for epoch in range(max_epochs):
        model.train()
        perm = tr_idx[torch.randperm(len(tr_idx), generator=gen)]
        for i in range(0, len(perm), BATCH):
            b = perm[i:i + BATCH]
            if len(b) < 2:
                continue
            pre = []
            out = model(Xt[b], pre)
            loss = ((out - zt[b]) ** 2).mean() + penalty * sum((h * h).mean() for h in pre)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
        model.eval()
        with torch.no_grad():
            val = float(((model(Xt[va_idx]) - zt[va_idx]) ** 2).mean())
        sched.step(val)
        if val < best - 1e-5:
            best, best_state, best_epoch, bad = val, copy.deepcopy(model.state_dict()), epoch, 0
        else:
            bad += 1
            if bad >= patience:
                break
    model.load_state_dict(best_state)
    print(f"  {prop} {shape}: best epoch {best_epoch + 1} of {epoch + 1}, val MSE (standardized) "
          f"{best:.4f}, {time.time() - t0:.0f} s", flush=True)
    return model.eval(), mean, std, best_epoch + 1, time.time() - t0


def export(model, mean, std, path, name):
    folded = model.folded(mean, std)
    torch.onnx.export(folded, torch.zeros(1, 1, 32, 32), path, opset_version=13,
                      input_names=["image"], output_names=[name])
    onnx.checker.check_model(onnx.load(path))
    return folded, os.path.getsize(path)


def pre_activation_max(model, X):
    """Largest |value| reaching each x*x, over the given images (eval mode)."""
    pre = []
    with torch.no_grad():
        model(torch.from_numpy(X), pre)
    return [float(h.abs().max()) for h in pre]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["small", "original", "baseline"])
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--props", default=",".join(dataset.PROPERTIES))
    ap.add_argument("--baseline-props", default=",".join(dataset.PROPERTIES))
    args = ap.parse_args()
    torch.set_num_threads(THREADS)
    torch.set_flush_denormal(True)  # squares of small values: denormals are 10x slower
    torch.use_deterministic_algorithms(True)
    t_all = time.time()

    rows, counts = dataset.load()
    cells = featurizer.load_layout()
    X = featurizer.image_from_counts(counts, cells).astype(np.float32)[:, None]
    split = np.array([r["split"] for r in rows])
    te = np.flatnonzero(split == "test")
    sub = te[np.round(np.linspace(0, len(te) - 1, N_TEST_FILE)).astype(int)]
    print(f"{len(rows)} molecules: train {(split == 'train').sum()}, valid {(split == 'valid').sum()}, "
          f"test {len(te)} ({len(sub)} in test_split.csv)")
    props = args.props.split(",")
    results_path = os.path.join(CACHE_DIR, "results.json")
    results = json.load(open(results_path)) if os.path.exists(results_path) else {}
    sub_pred = {}

    jobs = []
    if args.only in (None, "small"):
        jobs += [(p, "small") for p in props]
    if args.only in (None, "original") and "sa" in props:
        jobs.append(("sa", "original"))
    for prop, shape in jobs:
        y = np.array([r[prop] for r in rows])
        seed = SEED + dataset.PROPERTIES.index(prop) + (100 if shape == "original" else 0)
        model, mean, std, epochs, secs = train_student(prop, shape, X, y, split, seed)
        if shape == "small":
            path = os.path.join(DATA_DIR, f"{prop}_small.onnx")
        else:
            path = os.path.join(CACHE_DIR, f"{prop}_{shape}.onnx")
        folded, size = export(model, mean, std, path, prop)
        if shape == "small" and size > MAX_FILE_BYTES:
            raise SystemExit(f"{path}: {size} bytes > 1 MB")
        with torch.no_grad():
            p32 = folded(torch.from_numpy(X[te])).squeeze(1).numpy().astype(np.float64)
        p64 = onnx_forward(path, X[te].astype(np.float64))
        agree = float(np.abs(p64 - p32).max())
        r2, mae = r2_mae(y[te], p64)
        idx = np.searchsorted(te, sub)
        r2s, maes = r2_mae(y[sub], p64[idx])
        pmax = pre_activation_max(model, X[te])
        outmax = float(np.abs(p64).max())
        print(f"  {prop} {shape}: test R^2 {r2:.4f} MAE {mae:.4f} (300: R^2 {r2s:.4f} MAE {maes:.4f}); "
              f"{size} bytes; |float32 - float64| <= {agree:.2e}; max |pre-activation| on test "
              f"{', '.join(f'{v:.2f}' for v in pmax)}; max |output| {outmax:.2f}", flush=True)
        results[f"{prop}_{shape}"] = {
            "path": os.path.relpath(path, featurizer.REPO), "bytes": size, "train_mean": mean,
            "train_std": std, "epochs": epochs, "seconds": round(secs, 1), "seed": seed,
            "test_r2": r2, "test_mae": mae, "test300_r2": r2s, "test300_mae": maes,
            "max_pre_activation_test": pmax, "max_abs_output_test": outmax,
            "float32_vs_float64_max_diff": agree}
        if shape == "small":
            sub_pred[prop] = p64[idx]

    if not args.no_baseline and args.only in (None, "baseline"):
        from sklearn.ensemble import HistGradientBoostingRegressor
        tr = split == "train"
        F = np.asarray(counts, np.float64)
        for prop in args.baseline_props.split(","):
            t0 = time.time()
            y = np.array([r[prop] for r in rows])
            gb = HistGradientBoostingRegressor(max_iter=300, learning_rate=0.1, max_leaf_nodes=63,
                                               early_stopping=False, random_state=SEED)
            gb.fit(F[tr], y[tr])
            p = gb.predict(F[te])
            r2, mae = r2_mae(y[te], p)
            r2s, maes = r2_mae(y[sub], p[np.searchsorted(te, sub)])
            print(f"  {prop} gradient boosting (counts): test R^2 {r2:.4f} MAE {mae:.4f} "
                  f"(300: R^2 {r2s:.4f} MAE {maes:.4f}), {time.time() - t0:.0f} s", flush=True)
            results[f"{prop}_gbm"] = {"test_r2": r2, "test_mae": mae, "test300_r2": r2s,
                                      "test300_mae": maes, "seconds": round(time.time() - t0, 1)}

    if set(sub_pred) == set(dataset.PROPERTIES):
        path = os.path.join(DATA_DIR, "test_split.csv")
        with open(path, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["smiles"] + dataset.PROPERTIES + [f"{p}_small" for p in dataset.PROPERTIES])
            for k, i in enumerate(sub):
                w.writerow([rows[i]["smiles"]] + [repr(rows[i][p]) for p in dataset.PROPERTIES]
                           + [repr(float(sub_pred[p][k])) for p in dataset.PROPERTIES])
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")
    os.makedirs(CACHE_DIR, exist_ok=True)
    with open(results_path, "w") as f:
        json.dump(results, f, indent=1)
    print(f"wrote {results_path}; {time.time() - t_all:.0f} s in all")


def use_openblas():
    """Re-executes under the OpenBLAS of build-molecules/openblas when it is there: Debian's
    torch calls the default libblas.so.3 (netlib's reference BLAS here, 10x slower)."""
    lib = os.path.abspath(OPENBLAS)
    if os.path.isdir(lib) and lib not in os.environ.get("LD_LIBRARY_PATH", "").split(":"):
        env = dict(os.environ, LD_LIBRARY_PATH=lib + ":" + os.environ.get("LD_LIBRARY_PATH", ""),
                   OPENBLAS_NUM_THREADS=str(THREADS), OMP_NUM_THREADS=str(THREADS))
        os.execve(sys.executable, [sys.executable, "-u"] + sys.argv, env)


if __name__ == "__main__":
    use_openblas()
    main()
