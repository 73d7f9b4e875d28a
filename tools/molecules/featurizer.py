#!/usr/bin/python3
"""Veil's molecule featurizer: SMILES -> 1024 Morgan count bins -> a 32x32 image.

The contract (the C++ featurizer reproduces it bit for bit; FEATURIZER / VERSION name it):
* mol = Chem.MolFromSmiles(smiles) with RDKit's defaults (sanitized, no added hydrogens);
  None -> ValueError naming the SMILES.
* counts = AllChem.GetHashedMorganFingerprint(mol, 3, nBits=1024, useFeatures=True)
  .GetNonzeroElements(): the count-based Morgan fingerprint of radius 3 with feature
  invariants, folded to 1024 bins (in C++: MorganFingerprints::getFeatureInvariants, then
  getHashedFingerprint(mol, 3, 1024, &invariants)); no chirality.
* the pixel of bin b is min(count_b, CAP) / CAP with CAP = 8 (values in [0, 1]), placed at
  grid cell cells[b] = row * 32 + col; cells is a permutation of 0..1023 learned once from
  the training molecules (learn_layout) and saved in tests/data/molecules/layout.json.

Needs Debian's /usr/bin/python3 with python3-rdkit (2022.09.3), python3-numpy and
python3-scipy. Run from the repository root:

    /usr/bin/python3 tools/molecules/featurizer.py --cases   # writes featurizer_cases.txt
    /usr/bin/python3 tools/molecules/featurizer.py --show 'CCO'  # prints a molecule's image

The layout itself is learned by tools/molecules/dataset.py (it needs the training split).
No network access; deterministic.
"""
import json
import os
import sys

import numpy as np
from rdkit import Chem, RDLogger
from rdkit.Chem import AllChem

FEATURIZER = "morgan-count-feat-r3-1024"
VERSION = 1
BINS = 1024
HEIGHT = 32
WIDTH = 32
CAP = 8
RADIUS = 3
COVERED = 30  # rows / columns read by a k3 stride-3 conv of the 32x32 image

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA_DIR = os.path.join(REPO, "tests", "data", "molecules")
LAYOUT_PATH = os.path.join(DATA_DIR, "layout.json")
CASES_PATH = os.path.join(DATA_DIR, "featurizer_cases.txt")


def parse(smiles):
    """RDKit's default parse; ValueError naming the SMILES when RDKit rejects it."""
    RDLogger.DisableLog("rdApp.*")
    try:
        mol = Chem.MolFromSmiles(smiles)
    finally:
        RDLogger.EnableLog("rdApp.*")
    if mol is None:
        raise ValueError(f"invalid SMILES: {smiles!r}")
    return mol


def morgan_count_dict(mol):
    """{bin: count} of the featurizer's fingerprint of a parsed molecule."""
    fp = AllChem.GetHashedMorganFingerprint(mol, RADIUS, nBits=BINS, useFeatures=True)
    return dict(fp.GetNonzeroElements())


def morgan_counts(smiles):
    """np.ndarray[1024] (int64) of the Morgan feature-count bins of a SMILES."""
    v = np.zeros(BINS, dtype=np.int64)
    for b, c in morgan_count_dict(parse(smiles)).items():
        v[b] = c
    return v


def pixel_values(counts):
    """min(count, CAP) / CAP, float64 (works on one vector or a stack of them)."""
    return np.minimum(np.asarray(counts), CAP).astype(np.float64) / CAP


def image(smiles, cells):
    """np.ndarray[32, 32] float64: the pixel of bin b at grid cell cells[b]."""
    return image_from_counts(morgan_counts(smiles), cells)


def image_from_counts(counts, cells):
    """Images of one ([1024] -> [32, 32]) or many ([n, 1024] -> [n, 32, 32]) count vectors."""
    counts = np.asarray(counts)
    cells = np.asarray(cells, dtype=np.int64)
    flat = np.zeros(counts.shape[:-1] + (HEIGHT * WIDTH,), dtype=np.float64)
    flat[..., cells] = pixel_values(counts)
    return flat.reshape(counts.shape[:-1] + (HEIGHT, WIDTH))


# ---- layout -------------------------------------------------------------------------

def learn_layout(counts):
    """cells[1024]: a permutation of the grid cells, correlated bins next to each other.

    counts: [n, 1024] int counts of the training molecules. Steps (all deterministic):
    1. x = pixel values (min(count, 8) / 8); the Pearson correlation matrix C of the bins
       over the molecules (a bin that is never set, or constant, gets correlation 0 with
       every other bin: a neutral point of the embedding).
    2. Classical MDS of the distances d_ij = sqrt(2 (1 - C_ij)): the two leading
       eigenvectors of the double-centered -D^2/2 (numpy.linalg.eigh), each scaled by the
       root of its eigenvalue, signs fixed so the largest-magnitude entry is positive.
    3. The students' first layer (conv k3 stride 3) reads rows and columns 0..29 only, so
       the 124 bins of lowest variance (ties by bin index) go to the 124 cells with row or
       column 30 or 31, in increasing bin and cell order. The other 900 bins: each
       coordinate is replaced by its rank among them (ties by bin index) rescaled to
       [0, 29], uniform marginals on the 30x30 square.
    4. scipy.optimize.linear_sum_assignment of those 900 points to the 900 cell centers
       (row, col) of the 30x30 square, cost = squared Euclidean distance; bin b gets cell
       row * 32 + col.
    """
    from scipy.optimize import linear_sum_assignment

    x = pixel_values(counts)
    n = x.shape[0]
    mean = x.mean(axis=0)
    xc = x - mean
    cov = xc.T @ xc / n
    sd = np.sqrt(np.diag(cov))
    live = sd > 0
    corr = np.zeros((BINS, BINS))
    corr[np.ix_(live, live)] = cov[np.ix_(live, live)] / np.outer(sd[live], sd[live])
    np.fill_diagonal(corr, 1.0)
    corr = np.clip(corr, -1.0, 1.0)
    d2 = 2.0 * (1.0 - corr)
    j = np.eye(BINS) - np.ones((BINS, BINS)) / BINS
    b = -0.5 * j @ d2 @ j
    b = (b + b.T) / 2
    w, v = np.linalg.eigh(b)
    order = np.argsort(-w, kind="stable")[:2]
    coords = v[:, order] * np.sqrt(np.maximum(w[order], 0))
    for k in range(2):
        i = np.argmax(np.abs(coords[:, k]))
        if coords[i, k] < 0:
            coords[:, k] = -coords[:, k]
    rows, cols = np.divmod(np.arange(HEIGHT * WIDTH), WIDTH)
    inner_cells = np.flatnonzero((rows < COVERED) & (cols < COVERED))
    border_cells = np.flatnonzero((rows >= COVERED) | (cols >= COVERED))
    var = x.var(axis=0)
    by_var = np.lexsort((np.arange(BINS), var))  # lowest variance first, ties by bin index
    border_bins = np.sort(by_var[:len(border_cells)])
    inner_bins = np.sort(by_var[len(border_cells):])
    cells = np.empty(BINS, dtype=np.int64)
    cells[border_bins] = border_cells
    m = len(inner_bins)
    sub = coords[inner_bins]
    ranked = np.empty_like(sub)
    for k in range(2):
        r = np.lexsort((np.arange(m), sub[:, k]))  # by value, ties by bin index
        ranked[r, k] = np.arange(m) * (COVERED - 1) / (m - 1)
    grid = np.stack([rows[inner_cells], cols[inner_cells]], axis=1).astype(np.float64)
    cost = ((ranked[:, None, :] - grid[None, :, :]) ** 2).sum(axis=2)
    bins_idx, cell_idx = linear_sum_assignment(cost)
    cells[inner_bins[bins_idx]] = inner_cells[cell_idx]
    assert sorted(cells.tolist()) == list(range(BINS))
    return cells, corr


def neighbor_correlation(cells, corr):
    """Mean correlation of the bins in 4-neighboring cells (a layout quality figure)."""
    at = np.empty(BINS, dtype=np.int64)
    at[cells] = np.arange(BINS)  # bin at each cell
    g = at.reshape(HEIGHT, WIDTH)
    pairs = [(g[:, :-1], g[:, 1:]), (g[:-1, :], g[1:, :])]
    vals = np.concatenate([corr[a.ravel(), b.ravel()] for a, b in pairs])
    return float(vals.mean())


def save_layout(cells, path=LAYOUT_PATH):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    doc = {"featurizer": FEATURIZER, "version": VERSION, "bins": BINS, "height": HEIGHT,
           "width": WIDTH, "cap": CAP, "cells": [int(c) for c in cells]}
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")


def load_layout(path=LAYOUT_PATH):
    with open(path) as f:
        doc = json.load(f)
    if doc["featurizer"] != FEATURIZER or doc["version"] != VERSION:
        raise ValueError(f"{path}: layout of {doc['featurizer']} v{doc['version']}, "
                         f"expected {FEATURIZER} v{VERSION}")
    cells = np.asarray(doc["cells"], dtype=np.int64)
    assert sorted(cells.tolist()) == list(range(BINS))
    return cells


# ---- golden cases -------------------------------------------------------------------

CASES = [
    "C",                                            # methane: one atom
    "CCO",                                          # ethanol
    "CC(=O)Oc1ccccc1C(=O)O",                        # aspirin
    "c1ccccc1",                                     # benzene, aromatic
    "C1=CC=CC=C1",                                  # benzene, Kekule form (same bins)
    "c1ccc2ccccc2c1",                               # naphthalene
    "Cn1cnc2c1c(=O)n(C)c(=O)n2C",                   # caffeine, aromatic n
    "c1ccc2[nH]ccc2c1",                             # indole, [nH]
    "c1ccsc1",                                      # thiophene
    "c1ccoc1",                                      # furan
    "O=C(O)c1ccncc1",                               # isonicotinic acid, pyridine
    "CC(C)Cc1ccc(cc1)[C@@H](C)C(=O)O",              # ibuprofen, stereo (ignored)
    "C[C@H](N)C(=O)O",                              # L-alanine
    "C[C@@H](N)C(=O)O",                             # D-alanine (same bins: no chirality)
    "F/C=C/F",                                      # trans double bond
    "F/C=C\\F",                                     # cis double bond
    "C[N+](C)(C)C",                                 # tetramethylammonium, cation
    "CC(=O)[O-]",                                   # acetate, anion
    "[NH4+].[Cl-]",                                 # ammonium chloride, salt
    "[Na+].CC(=O)[O-]",                             # sodium acetate, salt with '.'
    "CCN(CC)CC.Cl",                                 # triethylamine hydrochloride
    "O=[N+]([O-])c1ccc(cc1)O",                      # 4-nitrophenol, zwitterionic nitro
    "OC1=C(Cl)C=C(C=C1[N+]([O-])=O)[N+]([O-])=O",   # first_5K.smi line 3
    "C1CC2CCC1C2",                                  # norbornane, bridged
    "C12C3C4C1C5C2C3C45",                           # cubane, ring-closure heavy
    "C1CC23CCC4(CC2)CCC3(C1)CC4",                   # polycyclic cage, ring closures
    "c1cc2ccc3cccc4ccc(c1)c2c34",                   # pyrene
    "CC1(C)SC2C(NC(=O)Cc3ccccc3)C(=O)N2C1C(=O)O",   # penicillin G
    "CN1CCC[C@H]1c1cccnc1",                         # nicotine
    "OC[C@H]1OC(O)[C@H](O)[C@@H](O)[C@@H]1O",       # glucose, many stereocenters
    "CC(C)(C)c1ccc(O)cc1",                          # 4-tert-butylphenol
    "FC(F)(F)c1ccc(Br)cc1I",                        # halogens
    "P(=O)(O)(O)O",                                 # phosphoric acid
    "CS(=O)(=O)N",                                  # methanesulfonamide
    "[2H]C([2H])([2H])O",                           # isotopes
    "N#Cc1ccccc1",                                  # nitrile
    "CCCCCCCCCCCCCCCCCC(=O)O",                      # stearic acid, long chain
    "C1=CC=C2C(=C1)C=CC=C2[Se]C",                   # selenium
    "[Fe+2].[O-]C(=O)C.[O-]C(=O)C",                 # metal salt
    "CC(=O)Nc1ccc(O)cc1",                           # paracetamol
    "c1ccccc1C",                                    # toluene, written oddly
    "C1CC1C(",                                      # invalid: unclosed branch
    "c1cccc1",                                      # invalid: cannot kekulize
    "CC(C)(C)(C)C",                                 # invalid: pentavalent carbon
    "XYZ",                                          # invalid: not SMILES
]


def write_cases(path=CASES_PATH):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    lines = []
    for smi in CASES:
        try:
            counts = morgan_count_dict(parse(smi))
        except ValueError:
            lines.append(f"{smi}\tinvalid")
            continue
        lines.append(smi + "\t" + " ".join(f"{b}:{c}" for b, c in sorted(counts.items())))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return lines


def main(argv):
    if "--cases" in argv:
        lines = write_cases()
        bad = sum(1 for line in lines if line.endswith("\tinvalid"))
        print(f"wrote {CASES_PATH}: {len(lines)} SMILES, {bad} invalid")
    if "--show" in argv:
        smi = argv[argv.index("--show") + 1]
        img = image(smi, load_layout())
        for row in img:
            print("".join(" .:-=+*#%@"[min(9, int(round(p * 9)))] for p in row))
    if not any(a in argv for a in ("--cases", "--show")):
        print(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
