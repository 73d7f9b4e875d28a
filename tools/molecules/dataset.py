#!/usr/bin/python3
"""The molecule data set: Debian's rdkit-data molecules, a scaffold split, teacher labels,
fingerprint counts and the featurizer's grid layout.

Needs Debian's /usr/bin/python3 with python3-rdkit (2022.09.3), rdkit-data (the files
under /usr/share/RDKit), python3-numpy and python3-scipy. Run from the repository root:

    /usr/bin/python3 tools/molecules/dataset.py          # build (or reuse) the cache
    /usr/bin/python3 tools/molecules/dataset.py --force  # rebuild it

No network access; deterministic (no randomness at all). Writes:
* build-molecules/molecules.csv: canonical SMILES, source, split, the 5 teacher values
  (sa, np, logp, tpsa, qed); build-molecules/counts.npy: [n, 1024] int16 fingerprint counts
  in the same order (git-ignored cache; train.py reads them).
* tests/data/molecules/layout.json: the featurizer's grid layout learned on the train split.

Molecules: every SMILES / SDF / CSV set of molecules shipped under /usr/share/RDKit (SOURCES
below). Each record is parsed with RDKit's defaults; unparsable records are dropped; only the
largest fragment is kept (most heavy atoms, ties by canonical SMILES: salts and solvents are
stripped); molecules with 5..70 heavy atoms are kept; duplicates are removed by the
non-isomeric canonical SMILES of that fragment (the featurizer ignores stereo, so
stereoisomers would be identical inputs), the first source in SOURCES order wins. The
stored SMILES is that canonical SMILES, and every feature and label is computed from
Chem.MolFromSmiles of it (what a client of the featurizer would do).

Split: Bemis-Murcko scaffolds (MurckoScaffold.MurckoScaffoldSmiles, generic atoms kept,
no chirality; acyclic molecules share the empty scaffold). Groups sorted by size, largest
first (ties by scaffold SMILES); a group goes to train while train stays <= 80% of the
molecules, else to validation while it stays <= 10%, else to test. So the test split holds
the rarest scaffolds (none of them seen in training).

Teachers: sa = synthetic accessibility (Contrib/SA_Score sascorer.calculateScore, 1 easy ..
10 hard), np = natural-product likeness (Contrib/NP_Score npscorer.scoreMol with
readNPModel()), logp = Crippen.MolLogP, tpsa = rdMolDescriptors.CalcTPSA, qed = QED.qed.
"""
import csv
import gzip
import io
import os
import sys
import time

import numpy as np
from rdkit import Chem, RDLogger
from rdkit.Chem import QED, Crippen, rdMolDescriptors
from rdkit.Chem.Scaffolds import MurckoScaffold

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import featurizer  # noqa: E402

RD = "/usr/share/RDKit"
sys.path.insert(0, os.path.join(RD, "Contrib", "SA_Score"))
sys.path.insert(0, os.path.join(RD, "Contrib", "NP_Score"))

REPO = featurizer.REPO
CACHE_DIR = os.path.join(REPO, "build-molecules")
CSV_PATH = os.path.join(CACHE_DIR, "molecules.csv")
COUNTS_PATH = os.path.join(CACHE_DIR, "counts.npy")
PROPERTIES = ["sa", "np", "logp", "tpsa", "qed"]
MIN_HEAVY, MAX_HEAVY = 5, 70
TRAIN_FRAC, VALID_FRAC = 0.8, 0.1

# (path relative to /usr/share/RDKit, kind). kind: smi = SMILES first field (whitespace
# separated); csv:COL[,COL...] = SMILES in the named columns; csvq0 = first field of a
# quoted CSV without header; sdf = SD file.
SOURCES = [
    ("Data/NCI/first_5K.smi", "smi"),
    ("Data/NCI/first_200.props.sdf", "sdf"),
    ("Data/Pains/test_data/wehi_mols.csv", "csvq0"),
    ("Contrib/NIBRSubstructureFilters/SubstructureFilter_HitTriaging_wPubChemExamples.csv",
     "csv:EX1,EX2,EX3,EX4,EX5"),
    ("Contrib/NIBRSubstructureFilters/examples/chembl24_structs_randomtestSample_100.csv",
     "csv:smiles"),
    ("Contrib/Fastcluster/cdk2.smi", "smi2"),
    ("Contrib/Fastcluster/testdata/cdk2.sdf", "sdf"),
    ("Contrib/FreeWilson/data/CHEMBL2321810.smi", "smi"),
    ("Contrib/fraggle/data/ChEMBL_11265_actives.smi", "smi"),
    ("Contrib/PBF/testData/egfr.sdf", "sdf"),
    ("Contrib/SA_Score/data/zim.100.txt", "csv\t:smiles"),
    ("Contrib/mmpa/data/sample.smi", "smi"),
    ("Projects/DbCLI/testData/bzr.smi", "smi"),
    ("Projects/DbCLI/testData/bzr.2.smi", "smi"),
    ("Projects/DbCLI/testData/bzr.sdf", "sdf"),
    ("Projects/DbCLI/testData/pubchem.200.sdf", "sdf"),
]


def read_source(path, kind):
    """Yields RDKit molecules (None for a record RDKit rejects) of one file."""
    full = os.path.join(RD, path)
    if kind == "sdf":
        for mol in Chem.SDMolSupplier(full):
            yield mol
        return
    with open(full, newline="") as f:
        text = f.read()
    if kind in ("smi", "smi2"):
        for line in text.splitlines():
            fields = line.split()
            if not fields:
                continue
            smi = fields[1] if kind == "smi2" else fields[0]
            yield Chem.MolFromSmiles(smi)
    elif kind == "csvq0":
        for row in csv.reader(io.StringIO(text)):
            if row:
                yield Chem.MolFromSmiles(row[0])
    elif kind.startswith("csv"):
        delim = "\t" if kind.startswith("csv\t") else ","
        cols = kind.split(":", 1)[1].split(",")
        for row in csv.DictReader(io.StringIO(text), delimiter=delim):
            for c in cols:
                smi = (row.get(c) or "").strip()
                if smi:
                    yield Chem.MolFromSmiles(smi)
    else:
        raise ValueError(kind)


def largest_fragment(mol):
    frags = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=True)
    return min(frags, key=lambda m: (-m.GetNumHeavyAtoms(), Chem.MolToSmiles(m)))


def collect():
    """[(smiles, source)], counts of records per stage."""
    seen = {}
    stats = {"records": 0, "unparsable": 0, "size": 0, "roundtrip": 0, "duplicate": 0}
    per_source = {}
    for path, kind in SOURCES:
        kept = 0
        for mol in read_source(path, kind):
            stats["records"] += 1
            if mol is None:
                stats["unparsable"] += 1
                continue
            frag = largest_fragment(mol)
            if not MIN_HEAVY <= frag.GetNumHeavyAtoms() <= MAX_HEAVY:
                stats["size"] += 1
                continue
            smi = Chem.MolToSmiles(frag, isomericSmiles=False)
            if Chem.MolFromSmiles(smi) is None:
                stats["roundtrip"] += 1
                continue
            if smi in seen:
                stats["duplicate"] += 1
                continue
            seen[smi] = path
            kept += 1
        per_source[path] = kept
    return list(seen.items()), stats, per_source


def scaffold_split(smiles):
    groups = {}
    for i, smi in enumerate(smiles):
        scaf = MurckoScaffold.MurckoScaffoldSmiles(mol=Chem.MolFromSmiles(smi), includeChirality=False)
        groups.setdefault(scaf, []).append(i)
    order = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    n = len(smiles)
    split = [""] * n
    sizes = {"train": 0, "valid": 0, "test": 0}
    scafs = {"train": 0, "valid": 0, "test": 0}
    for _, idx in order:
        if sizes["train"] + len(idx) <= TRAIN_FRAC * n:
            s = "train"
        elif sizes["valid"] + len(idx) <= VALID_FRAC * n:
            s = "valid"
        else:
            s = "test"
        for i in idx:
            split[i] = s
        sizes[s] += len(idx)
        scafs[s] += 1
    return split, sizes, scafs


def teachers(mol, np_model):
    import npscorer
    import sascorer
    return [sascorer.calculateScore(mol), npscorer.scoreMol(mol, np_model), Crippen.MolLogP(mol),
            rdMolDescriptors.CalcTPSA(mol), QED.qed(mol)]


def build():
    import npscorer
    RDLogger.DisableLog("rdApp.*")
    t0 = time.time()
    items, stats, per_source = collect()
    print(f"records {stats['records']}: unparsable {stats['unparsable']}, outside {MIN_HEAVY}..{MAX_HEAVY} "
          f"heavy atoms {stats['size']}, round-trip failures {stats['roundtrip']}, duplicates "
          f"{stats['duplicate']}; kept {len(items)} ({time.time() - t0:.1f} s)")
    for path, k in per_source.items():
        print(f"  {k:6d} new from {path}")
    smiles = [s for s, _ in items]
    split, sizes, scafs = scaffold_split(smiles)
    print(f"scaffold split: " + ", ".join(f"{k} {sizes[k]} molecules / {scafs[k]} scaffolds" for k in sizes))
    stderr, sys.stderr = sys.stderr, io.StringIO()  # readNPModel prints to stderr
    try:
        np_model = npscorer.readNPModel()
    finally:
        sys.stderr = stderr
    rows = []
    counts = np.zeros((len(smiles), featurizer.BINS), dtype=np.int16)
    for i, (smi, src) in enumerate(items):
        mol = Chem.MolFromSmiles(smi)
        rows.append([smi, src, split[i]] + teachers(mol, np_model))
        for b, c in featurizer.morgan_count_dict(mol).items():
            counts[i, b] = c
    print(f"teachers and fingerprints: {time.time() - t0:.1f} s")
    os.makedirs(CACHE_DIR, exist_ok=True)
    with open(CSV_PATH, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["smiles", "source", "split"] + PROPERTIES)
        for r in rows:
            w.writerow(r[:3] + [repr(float(v)) for v in r[3:]])
    np.save(COUNTS_PATH, counts)
    train = np.array([s == "train" for s in split])
    cells, corr = featurizer.learn_layout(counts[train])
    featurizer.save_layout(cells)
    ident = np.arange(featurizer.BINS)
    print(f"layout: mean correlation of neighboring bins {featurizer.neighbor_correlation(cells, corr):.4f} "
          f"(identity layout {featurizer.neighbor_correlation(ident, corr):.4f}); "
          f"bins never set in train: {int((counts[train].max(axis=0) == 0).sum())}")
    print(f"wrote {CSV_PATH}, {COUNTS_PATH}, {featurizer.LAYOUT_PATH} ({time.time() - t0:.1f} s)")


def load():
    """(rows as dicts, counts [n, 1024] int16); builds the cache when missing."""
    if not (os.path.exists(CSV_PATH) and os.path.exists(COUNTS_PATH)):
        build()
    with open(CSV_PATH, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for p in PROPERTIES:
            r[p] = float(r[p])
    return rows, np.load(COUNTS_PATH)


def check_sa_reference():
    """SA scorer against the reference values shipped in Contrib/SA_Score/data/zim.100.txt."""
    import sascorer
    errs = []
    with open(os.path.join(RD, "Contrib/SA_Score/data/zim.100.txt")) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            m = Chem.MolFromSmiles(row["smiles"])
            errs.append(abs(sascorer.calculateScore(m) - float(row["sa_score"])))
    print(f"SA scorer vs zim.100.txt reference: max |diff| {max(errs):.4f} over {len(errs)} molecules")


if __name__ == "__main__":
    if "--force" in sys.argv or not (os.path.exists(CSV_PATH) and os.path.exists(COUNTS_PATH)):
        build()
    else:
        print(f"cache present: {CSV_PATH} (--force rebuilds it)")
    check_sa_reference()
