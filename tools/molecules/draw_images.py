#!/usr/bin/python3
"""Draws 4 molecules' featurizer images side by side: docs/molecule_images.png.

Each panel is the 32x32 model input of tools/molecules/featurizer.py (Morgan count
fingerprint, pixel min(count, 8) / 8 at the cell of tests/data/molecules/layout.json);
rows and columns 30 and 31 (not read by the students' k3 stride-3 conv) hold the 124
rarest bins. Needs Debian's /usr/bin/python3 with python3-rdkit and python3-matplotlib.
From the repository root:

    /usr/bin/python3 tools/molecules/draw_images.py
"""
import os
import sys

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import featurizer as fz  # noqa: E402
from make_golden import MOLECULES  # noqa: E402

SHOWN = ["aspirin", "caffeine", "penicillin_g", "erythromycin"]
OUT_PATH = os.path.join(fz.REPO, "docs", "molecule_images.png")


def main():
    cells = fz.load_layout()
    smiles = dict(MOLECULES)
    cmap = matplotlib.colormaps["viridis"].copy()
    cmap.set_bad("#eeeeee")  # zero pixels (unset bins) light grey
    fig, axes = plt.subplots(1, len(SHOWN), figsize=(10, 3.0), layout="constrained")
    for ax, name in zip(axes, SHOWN):
        img = fz.image(smiles[name], cells)
        shown = ax.imshow(np.ma.masked_equal(img, 0.0), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        ax.axhline(fz.COVERED - 0.5, color="black", lw=0.6, ls=":")
        ax.axvline(fz.COVERED - 0.5, color="black", lw=0.6, ls=":")
        ax.set_title(f"{name.replace('_', ' ')}\n{int((img > 0).sum())} bins set", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(shown, ax=list(axes), shrink=0.9, label="min(count, 8) / 8")
    fig.suptitle("Molecule featurizer images (32x32, layout.json; grey: 0; right of / below the dotted lines: rows / columns 30-31, not read by the conv)",
                 fontsize=10)
    fig.savefig(OUT_PATH, dpi=90, metadata={"Software": None})
    print(f"wrote {OUT_PATH}: {os.path.getsize(OUT_PATH)} bytes")


if __name__ == "__main__":
    main()
