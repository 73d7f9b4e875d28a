#!/usr/bin/python3
"""Golden images of the molecule featurizer: tests/data/molecules/golden_images.txt.

For a fixed list of known molecules (MOLECULES below) this computes the Python
featurizer's 32x32 image (tools/molecules/featurizer.py: Morgan count fingerprint, radius
3, feature invariants, 1024 bins, pixel min(count, 8) / 8 at the cell of the committed
tests/data/molecules/layout.json) and writes them as text. tests/test_chem.cpp
(ChemFeaturizer.ImagesEqualGoldenImages) checks that the C++ featurizer gives the same
images bit for bit; `--check` (the ctest test featurizer_golden_images) checks that this
featurizer still does, so the two featurizers are pinned to one file.

Needs Debian's /usr/bin/python3 with python3-rdkit (2022.09.3) and python3-numpy. From the
repository root (deterministic: rerunning writes the identical file):

    /usr/bin/python3 tools/molecules/make_golden.py           # rewrite golden_images.txt
    /usr/bin/python3 tools/molecules/make_golden.py --check   # compare, exit 1 on a difference
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import featurizer as fz  # noqa: E402  (tools/molecules/featurizer.py)

GOLDEN_PATH = os.path.join(fz.DATA_DIR, "golden_images.txt")

# (name, SMILES): names without spaces; SMILES as written (never with spaces).
MOLECULES = [
    ("ethanol", "CCO"),
    ("benzene", "c1ccccc1"),
    ("aspirin", "CC(=O)Oc1ccccc1C(=O)O"),
    ("caffeine", "Cn1cnc2c1c(=O)n(C)c(=O)n2C"),
    ("sodium_acetate", "[Na+].CC(=O)[O-]"),                   # salt: both ions featurized
    ("glycine_zwitterion", "[NH3+]CC(=O)[O-]"),
    ("s_ibuprofen", "CC(C)Cc1ccc(cc1)[C@H](C)C(=O)O"),       # stereo (ignored by the featurizer)
    ("penicillin_g", "CC1([C@@H](N2[C@H](S1)[C@@H](C2=O)NC(=O)CC3=CC=CC=C3)C(=O)O)C"),
    ("stearic_acid", "CCCCCCCCCCCCCCCCCC(=O)O"),               # counts above the cap of 8
    ("18_crown_6", "C1COCCOCCOCCOCCOCCO1"),                    # macrocycle
    ("cholesterol", "C[C@H](CCCC(C)C)[C@H]1CC[C@@H]2[C@@]1(CC[C@H]3[C@H]2CC=C4[C@@]3(CC[C@@H](C4)O)C)C"),
    ("erythromycin", "CC[C@@H]1[C@@]([C@@H]([C@H](C(=O)[C@@H](C[C@@]([C@@H]([C@H]([C@@H]([C@H]"
                     "(C(=O)O1)C)O[C@H]2C[C@@]([C@H]([C@@H](O2)C)O)(C)OC)C)O[C@H]3[C@@H]([C@H]"
                     "(C[C@H](O3)C)N(C)C)O)(C)O)C)C)O)(C)O"),  # macrolide natural product
]

HEADER = f"""\
# Golden images of the molecule featurizer ({fz.FEATURIZER} version {fz.VERSION}, cap {fz.CAP},
# layout tests/data/molecules/layout.json), written by tools/molecules/make_golden.py with
# python3-rdkit; do not edit: rerun `/usr/bin/python3 tools/molecules/make_golden.py`.
# Format: lines starting with '#' are comments. Each molecule is a line
#   molecule <name> <number of nonzero pixels> <SMILES>
# followed by that many lines `<index> <value>`, index = row * 32 + col of the 32x32 image
# (increasing), value = Python's repr of the float64 pixel (round-trips exactly, e.g. with
# strtod); every pixel not listed is 0.
"""


def golden_text():
    cells = fz.load_layout()
    out = [HEADER]
    for name, smiles in MOLECULES:
        assert " " not in name and " " not in smiles
        flat = fz.image(smiles, cells).reshape(-1)
        nonzero = [(i, float(flat[i])) for i in range(flat.size) if flat[i] != 0.0]
        out.append(f"molecule {name} {len(nonzero)} {smiles}\n")
        out.extend(f"{i} {v!r}\n" for i, v in nonzero)
    return "".join(out)


def check(path=GOLDEN_PATH):
    """0 when the file equals a fresh computation; else prints the first difference, 1."""
    want = golden_text()
    try:
        with open(path) as f:
            have = f.read()
    except OSError as e:
        print(f"make_golden --check: cannot read {path}: {e}", file=sys.stderr)
        return 1
    if have == want:
        print(f"make_golden --check: {path} matches the Python featurizer ({len(MOLECULES)} molecules)")
        return 0
    a, b = have.splitlines(), want.splitlines()
    molecule = "(header)"
    for k in range(max(len(a), len(b))):
        la = a[k] if k < len(a) else "<end of file>"
        lb = b[k] if k < len(b) else "<end of output>"
        if lb.startswith("molecule "):
            molecule = lb
        if la != lb:
            print(f"make_golden --check: {path} differs from the Python featurizer at line {k + 1} "
                  f"(in '{molecule}'):\n  file:     {la}\n  computed: {lb}\n"
                  f"rerun /usr/bin/python3 tools/molecules/make_golden.py if the change is intended",
                  file=sys.stderr)
            return 1
    print(f"make_golden --check: {path} differs (line endings?)", file=sys.stderr)
    return 1


def main(argv):
    if argv == ["--check"]:
        return check()
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    text = golden_text()
    with open(GOLDEN_PATH, "w") as f:
        f.write(text)
    print(f"wrote {GOLDEN_PATH}: {len(MOLECULES)} molecules")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
