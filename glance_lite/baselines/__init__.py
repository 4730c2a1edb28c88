"""Baselines "beyond the paper": what Glance gains from context, and how it fares against MFFA.

    local_only.py  Local-Net patch features + nearest neighbour, no context (like TS, Sec. 4.2)
    psg.py         MFFA's PSG: CutPaste / CutPaste-Scar fine-tuning of the ResNet-18
    nns.py         MFFA's NNS: coreset memory bank, nearest-neighbour maps (PatchCore-like)
    gaussian.py    MFFA's Gaussian branch: per-position Gaussians, Mahalanobis maps (PaDiM-like)
    amc.py         MFFA's AMC: product of the normalised maps, sigma = 4 smoothing
    mffa.py        the four blocks together, with per-profile sizes (SETTINGS)
    compare.py     `glance-lite compare`: all five methods on one category, comparison.json

Import the submodules directly (compare.py pulls in training and evaluation).
"""
