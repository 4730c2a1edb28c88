"""A small, deterministic, MVTec-format synthetic dataset with structural *and* logical defects.

The paper's key claim (Sec. 4.2, Fig. 4) is that comparing a patch with its
surroundings catches anomalies that look perfectly normal inside any single
patch -- a misplaced or swapped part -- which purely local methods miss.  Real
MVTec AD is large and cannot be downloaded here, so this module draws three
toy categories that make the distinction explicit:

* ``fabric`` (texture): a printed fabric, a fine weave with a lattice of dots
  every 48 px, all of one ink (red, green or blue, varying between images).
* ``circuit`` (object): a green board with a copper grid and four chips of
  fixed colours in the corner slots of a 3x3 layout.
* ``cable`` (object): a cable cross-section with three cores (green, blue,
  brown) at fixed angles.

Structural defects (stains, holes, scratches, burns, cuts, pokes) put new
colours or shapes into the image.  Logical defects (``swap``, ``missing``,
``misplaced``, ``colour``) only rearrange or recolour normal parts; every layout is spaced so that no
33x33 window (the paper's patch size at 256x256) sees two parts at once, so
each anomalous patch, seen alone, has a near-duplicate in the training images
(checked in tests/test_data_synthetic.py), while its surroundings say what
should be there.  A logical defect must be local for this: one that changes a
whole structure end to end (a thread of a plaid, say) agrees with its own
surroundings, and a trained Global-Net predicted the defect, not the normal part
(MSE 0.41 against 1.26 in standardised units), so no context comparison can see it.
Masks are exact: the pixels whose
noise-free rendering differs from the defect-free rendering of the same image
by at least one grey level.  Training images vary by shifts, small rotations,
lighting gain/tint and pixel noise.  Geometry is defined in units of a 256 px
image and scaled to ``size``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import zlib
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
from PIL import Image

from .errors import DataError

SYNTHETIC_CATEGORIES = ("fabric", "circuit", "cable")
CATEGORY_TYPES: Dict[str, str] = {"fabric": "texture", "circuit": "object", "cable": "object"}
CATEGORY_DEFECTS: Dict[str, tuple] = {
    "fabric": ("hole", "stain", "colour", "missing"),
    "circuit": ("scratch", "burn", "swap", "missing", "misplaced"),
    "cable": ("cut", "poke", "swap", "missing"),
}
DEFECT_KINDS: Dict[str, str] = {
    "hole": "structural", "stain": "structural", "scratch": "structural",
    "burn": "structural", "cut": "structural", "poke": "structural",
    "swap": "logical", "missing": "logical", "misplaced": "logical", "colour": "logical",
}
_VERSION = 3  # bump whenever the drawings change: stamped folders are then redrawn

# ---------------------------------------------------------------- drawing helpers


def rgb(r: float, g: float, b: float) -> np.ndarray:
    return np.array([r, g, b], np.float32)


class Canvas:
    """Coordinates and soft-edged shape painters for an (S, S, 3) float image.

    Shapes are given in units of a 256 px image; ``c`` (S,) holds the pixel
    centres in those units.  Edges are anti-aliased over one pixel using a
    signed distance ``sd`` (negative inside): alpha = clip(0.5 - sd / px, 0, 1).
    Painters only touch the shape's bounding box, so they stay cheap.
    """

    def __init__(self, size: int):
        self.S, self.px = size, 256.0 / size
        self.c = ((np.arange(size) + 0.5) * self.px).astype(np.float32)

    def soft(self, sd: np.ndarray) -> np.ndarray:
        return np.clip(0.5 - sd / self.px, 0.0, 1.0)

    def _box(self, x0: float, x1: float, y0: float, y1: float):
        lo = lambda v: int(np.clip(np.floor(v / self.px) - 2, 0, self.S))
        hi = lambda v: int(np.clip(np.ceil(v / self.px) + 2, 0, self.S))
        rows, cols = slice(lo(y0), hi(y1)), slice(lo(x0), hi(x1))
        return (rows, cols), self.c[cols][None, :], self.c[rows][:, None]

    def _paint(self, img, sl, sd, colour, opacity: float = 1.0) -> None:
        a = (self.soft(sd) * opacity)[..., None]
        img[sl] = img[sl] * (1.0 - a) + colour * a

    def rect(self, img, x, y, hw, hh, colour) -> None:
        sl, X, Y = self._box(x - hw, x + hw, y - hh, y + hh)
        self._paint(img, sl, np.maximum(np.abs(X - x) - hw, np.abs(Y - y) - hh), colour)

    def disk(self, img, x, y, r, colour) -> None:
        sl, X, Y = self._box(x - r, x + r, y - r, y + r)
        self._paint(img, sl, np.hypot(X - x, Y - y) - r, colour)

    def blob(self, img, x, y, r0, rng, colour, opacity=1.0) -> None:
        """Irregular disk: radius r0 * (1 + sum of 3 random low harmonics)."""
        amp, phase = rng.uniform(0.0, 0.18, 3), rng.uniform(0, 2 * np.pi, 3)
        sl, X, Y = self._box(x - 1.6 * r0, x + 1.6 * r0, y - 1.6 * r0, y + 1.6 * r0)
        theta = np.arctan2(Y - y, X - x)
        radius = r0 * (1.0 + sum(a * np.sin(k * theta + f) for a, k, f in zip(amp, (2, 3, 5), phase)))
        self._paint(img, sl, np.hypot(X - x, Y - y) - radius, colour, opacity)

    def segment(self, img, x0, y0, x1, y1, width, colour) -> None:
        sl, X, Y = self._box(min(x0, x1) - width, max(x0, x1) + width,
                             min(y0, y1) - width, max(y0, y1) + width)
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((X - x0) * dx + (Y - y0) * dy) / max(dx * dx + dy * dy, 1e-9), 0.0, 1.0)
        self._paint(img, sl, np.hypot(X - x0 - t * dx, Y - y0 - t * dy) - width / 2, colour)


# ---------------------------------------------------------------- fabric (texture)
# A printed fabric: a fine beige weave with a lattice of dots, 48 px apart, all of one colour
# (red, green or blue; it varies between images, as the lattice's offset does). Dots are 12 px
# wide, so a 33 px window never sees two of them and a dot-free band 36 px wide runs between
# rows: a window where a dot is missing looks like a window between dots.
_BEIGE = rgb(0.83, 0.77, 0.63)
_INKS = [rgb(0.72, 0.16, 0.14), rgb(0.16, 0.52, 0.24), rgb(0.16, 0.24, 0.68)]
_PERIOD, _DOT_R = 48, 6.0


def _fabric_sample(rng: np.random.Generator) -> dict:
    return {"ox": float(rng.uniform(0, _PERIOD)), "oy": float(rng.uniform(0, _PERIOD)),
            "ink": int(rng.integers(0, 3)), "over": {}}  # over[(row, col)] = ink index, or -1: no dot


def _fabric_dots(p: dict) -> list:
    """(x, y, row, col) of every dot whose disk touches the 256 px canvas."""
    ks = range(-1, 256 // _PERIOD + 2)
    return [(p["ox"] + _PERIOD * i, p["oy"] + _PERIOD * j, j, i) for j in ks for i in ks
            if -_DOT_R < p["ox"] + _PERIOD * i < 256 + _DOT_R and -_DOT_R < p["oy"] + _PERIOD * j < 256 + _DOT_R]


def _fabric_draw(p: dict, cv: Canvas) -> np.ndarray:
    c = cv.c
    wx, wy = np.cos(2 * np.pi * (c + p["ox"]) / 8), np.cos(2 * np.pi * (c + p["oy"]) / 8)
    weave = (1.0 + 0.07 * wy[:, None] * wx[None, :])[..., None]       # (S, S, 1)
    img = np.empty((cv.S, cv.S, 3), np.float32)
    img[:] = _BEIGE
    for x, y, row, col in _fabric_dots(p):
        ink = p["over"].get((row, col), p["ink"])
        if ink >= 0:
            cv.disk(img, x, y, _DOT_R, _INKS[ink])
    return img * weave


def _fabric_logical(p: dict, defect: str, rng: np.random.Generator) -> dict:
    q = dict(p, over=dict(p["over"]))
    inner = [(row, col) for x, y, row, col in _fabric_dots(p) if 40 <= x <= 216 and 40 <= y <= 216]
    row, col = inner[int(rng.integers(len(inner)))]
    if defect == "colour":  # one dot printed with another of the three inks
        q["over"][(row, col)] = (p["ink"] + int(rng.integers(1, 3))) % 3
    else:  # "missing": one dot left out
        q["over"][(row, col)] = -1
    return q


def _fabric_structural(img: np.ndarray, p: dict, defect: str, rng, cv: Canvas) -> None:
    x, y = rng.uniform(40, 216, size=2)
    if defect == "hole":
        cv.blob(img, x, y, rng.uniform(8, 15), rng, rgb(0.05, 0.04, 0.04))
    else:  # stain
        cv.blob(img, x, y, rng.uniform(12, 22), rng, rgb(0.42, 0.27, 0.08), opacity=0.7)


# ---------------------------------------------------------------- circuit (object)
_BOARD, _TRACE, _PIN = rgb(0.07, 0.29, 0.13), rgb(0.22, 0.47, 0.20), rgb(0.76, 0.76, 0.72)
_CHIPS = [rgb(0.75, 0.18, 0.14), rgb(0.18, 0.28, 0.78), rgb(0.86, 0.74, 0.18), rgb(0.10, 0.10, 0.12)]
_LAYOUT = {(0, 0): 0, (0, 2): 1, (2, 0): 2, (2, 2): 3}  # slot (row, col) -> chip colour
# Slots 72 px apart, chips 24 px (32 with pins): two chips never fit in one 33 px
# window, and every chip keeps >= 33 px of board to the image border, so all
# windows around a chip look alike whatever slot it is in.
_SLOT, _CELL = 72, 36


def _circuit_sample(rng: np.random.Generator) -> dict:
    return {"sx": int(rng.integers(-5, 6)), "sy": int(rng.integers(-5, 6)), "chips": dict(_LAYOUT)}


def _circuit_draw(p: dict, cv: Canvas) -> np.ndarray:
    S, c = cv.S, cv.c
    img = np.empty((S, S, 3), np.float32)
    img[:] = _BOARD
    # copper grid midway between slot centres, with a via at every crossing
    dx = np.abs((c - (128 + p["sx"])) % _CELL - _CELL / 2)
    dy = np.abs((c - (128 + p["sy"])) % _CELL - _CELL / 2)
    line = np.maximum(cv.soft(dx - 1.0)[None, :], cv.soft(dy - 1.0)[:, None])[..., None]
    img = img * (1 - line) + _TRACE * line
    r = np.hypot(dx[None, :], dy[:, None])
    img = img * (1 - cv.soft(r - 3.5)[..., None]) + _PIN * cv.soft(r - 3.5)[..., None]
    img = img * (1 - cv.soft(r - 1.5)[..., None]) + _BOARD * 0.5 * cv.soft(r - 1.5)[..., None]
    for (row, col), colour in p["chips"].items():
        x, y = 128 + p["sx"] + _SLOT * (col - 1), 128 + p["sy"] + _SLOT * (row - 1)
        for side in (-1, 1):
            for k in (-7, 0, 7):
                cv.rect(img, x + side * 14, y + k, 2.0, 1.5, _PIN)
        cv.rect(img, x, y, 12, 12, _CHIPS[colour] * 0.7)
        cv.rect(img, x, y, 11, 11, _CHIPS[colour])
        cv.disk(img, x - 7, y - 7, 2.0, rgb(0.9, 0.9, 0.85))  # pin-1 marker
    return img


def _circuit_logical(p: dict, defect: str, rng: np.random.Generator) -> dict:
    chips = dict(p["chips"])
    slots = sorted(chips)
    if defect == "swap":
        a, b = rng.choice(len(slots), size=2, replace=False)
        chips[slots[a]], chips[slots[b]] = chips[slots[b]], chips[slots[a]]
    elif defect == "missing":
        del chips[slots[int(rng.integers(len(slots)))]]
    else:  # misplaced: a chip moves to an empty slot
        empty = [(r, c) for r in range(3) for c in range(3) if (r, c) not in chips]
        src, dst = slots[int(rng.integers(len(slots)))], empty[int(rng.integers(len(empty)))]
        chips[dst] = chips.pop(src)
    return dict(p, chips=chips)


def _circuit_structural(img: np.ndarray, p: dict, defect: str, rng, cv: Canvas) -> None:
    x, y = rng.uniform(40, 216, size=2)
    if defect == "scratch":
        ang, length = rng.uniform(0, np.pi), rng.uniform(40, 100)
        ddx, ddy = 0.5 * length * np.cos(ang), 0.5 * length * np.sin(ang)
        cv.segment(img, x - ddx, y - ddy, x + ddx, y + ddy, rng.uniform(1.5, 2.5), rgb(0.88, 0.62, 0.32))
    else:  # burn
        cv.blob(img, x, y, rng.uniform(10, 17), rng, rgb(0.30, 0.17, 0.06), opacity=0.9)
        cv.blob(img, x, y, rng.uniform(5, 8), rng, rgb(0.04, 0.03, 0.02))


# ---------------------------------------------------------------- cable (object)
_BG, _SHEATH, _COPPER = rgb(0.11, 0.11, 0.12), rgb(0.60, 0.60, 0.58), rgb(0.80, 0.52, 0.26)
_CORES = [rgb(0.22, 0.58, 0.26), rgb(0.20, 0.30, 0.74), rgb(0.48, 0.30, 0.14)]
_CABLE_R, _CORE_DIST, _CORE_R = 122.0, 52.0, 18.0


def _cable_sample(rng: np.random.Generator) -> dict:
    return {"cx": 128 + rng.uniform(-3, 3), "cy": 128 + rng.uniform(-3, 3),
            "rot": rng.uniform(-10, 10), "cores": [0, 1, 2]}  # colour per angular slot, -1 = none


def _cable_draw(p: dict, cv: Canvas) -> np.ndarray:
    img = np.empty((cv.S, cv.S, 3), np.float32)
    img[:] = _BG
    cv.disk(img, p["cx"], p["cy"], _CABLE_R, _SHEATH)
    for k, colour in enumerate(p["cores"]):
        if colour < 0:
            continue
        t = np.deg2rad(p["rot"] - 90 + 120 * k)
        x, y = p["cx"] + _CORE_DIST * np.cos(t), p["cy"] + _CORE_DIST * np.sin(t)
        cv.disk(img, x, y, _CORE_R, _CORES[colour] * 0.75)
        cv.disk(img, x, y, _CORE_R - 2, _CORES[colour])
        cv.disk(img, x, y, 7.0, _COPPER)
    return img


def _cable_logical(p: dict, defect: str, rng: np.random.Generator) -> dict:
    cores = list(p["cores"])
    if defect == "swap":
        a, b = rng.choice(3, size=2, replace=False)
        cores[a], cores[b] = cores[b], cores[a]
    else:  # missing core
        cores[int(rng.integers(3))] = -1
    return dict(p, cores=cores)


def _cable_structural(img: np.ndarray, p: dict, defect: str, rng, cv: Canvas) -> None:
    t = np.deg2rad(rng.choice([45, 135, 225, 315]) + rng.uniform(-25, 25))
    u, v = np.cos(t), np.sin(t)
    if defect == "cut":  # a radial slit cut into the sheath from its rim
        r_in, width = _CABLE_R - rng.uniform(18, 30), rng.uniform(3.5, 6.0)
        cv.segment(img, p["cx"] + r_in * u, p["cy"] + r_in * v, p["cx"] + (_CABLE_R + 6) * u,
                   p["cy"] + (_CABLE_R + 6) * v, width, _BG)
    else:  # poke: a small hole with a bright torn rim, between the cores and the rim
        r = rng.uniform(80, 105)
        x, y = p["cx"] + r * u, p["cy"] + r * v
        rad = rng.uniform(4, 7)
        cv.disk(img, x, y, rad + 2, rgb(0.85, 0.85, 0.82))
        cv.disk(img, x, y, rad, rgb(0.03, 0.03, 0.03))


_RENDER = {
    "fabric": (_fabric_sample, _fabric_draw, _fabric_logical, _fabric_structural),
    "circuit": (_circuit_sample, _circuit_draw, _circuit_logical, _circuit_structural),
    "cable": (_cable_sample, _cable_draw, _cable_logical, _cable_structural),
}


def render(category: str, defect: str, rng: np.random.Generator, size: int = 256):
    """Draw one image of ``category`` with ``defect`` ("good" for none).

    Returns:
        image: uint8 array (size, size, 3), lighting and noise applied.
        mask: bool array (size, size), True where the noise-free rendering
            differs from the defect-free one (all False for "good").
    """
    sample, draw, logical, structural = _RENDER[category]
    cv = Canvas(size)
    for _ in range(20):  # redraw in the (rare) case a defect changed no pixel
        p = sample(rng)
        clean = draw(p, cv)
        if defect == "good":
            img = clean
        elif DEFECT_KINDS[defect] == "logical":
            img = draw(logical(p, defect, rng), cv)
        else:
            img = clean.copy()
            structural(img, p, defect, rng, cv)
        mask = np.abs(img - clean).max(axis=2) >= 1.0 / 255
        if defect == "good" or mask.any():
            break
    gain = rng.uniform(0.92, 1.08) * rng.uniform(0.97, 1.03, size=3)
    noisy = img * gain + rng.normal(0.0, 0.02, size=img.shape)
    return np.round(np.clip(noisy, 0, 1) * 255).astype(np.uint8), mask


def _params(seed: int, size: int, n_train: int, n_test_good: int, n_test_per_defect: int, cat: str) -> dict:
    return {"generator": "glance_lite.data.synthetic", "version": _VERSION, "category": cat,
            "seed": seed, "size": size, "n_train": n_train, "n_test_good": n_test_good,
            "n_test_per_defect": n_test_per_defect, "defects": list(CATEGORY_DEFECTS[cat])}


def _write_category(folder: Path, params: dict) -> None:
    cat, size, seed = params["category"], params["size"], params["seed"]
    jobs = [("train", "good", i) for i in range(params["n_train"])]
    jobs += [("test", "good", i) for i in range(params["n_test_good"])]
    jobs += [("test", d, i) for d in CATEGORY_DEFECTS[cat] for i in range(params["n_test_per_defect"])]
    for split, defect, i in jobs:
        # one independent stream per file: any subset of files/categories is reproducible
        key = [seed, zlib.crc32(cat.encode()), zlib.crc32(split.encode()), zlib.crc32(defect.encode()), i]
        img, mask = render(cat, defect, np.random.default_rng(key), size)
        out = folder / split / defect
        out.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(out / f"{i:03d}.png", compress_level=1)
        if defect != "good":
            gt = folder / "ground_truth" / defect
            gt.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask.astype(np.uint8) * 255).save(gt / f"{i:03d}_mask.png")
    (folder / ".synthetic.json").write_text(json.dumps(params, indent=1, sort_keys=True))


def make_synthetic(root="data/synthetic", seed: int = 0, size: int = 256, n_train: int = 60,
                   n_test_good: int = 8, n_test_per_defect: int = 6,
                   categories: Optional[Sequence[str]] = None, overwrite: bool = False) -> Path:
    """Write the synthetic dataset in MVTec AD layout under ``root`` and return ``root``.

    A category folder stamped (``.synthetic.json``) with the same parameters is
    reused as is; one stamped by an older version of this generator is redrawn.
    An existing folder without the stamp or with other parameters raises
    DataError unless ``overwrite=True``.  Each category is
    written to a hidden temporary folder and renamed into place, so an
    interrupted run never leaves a half-written category.
    """
    root = Path(root)
    cats = list(SYNTHETIC_CATEGORIES if categories is None else categories)
    for cat in cats:
        if cat not in _RENDER:
            raise DataError(f"unknown synthetic category {cat!r}; expected one of {SYNTHETIC_CATEGORIES}")
    if size < 64:
        raise DataError(f"size must be at least 64 pixels, got {size}")
    root.mkdir(parents=True, exist_ok=True)
    for cat in cats:
        params = _params(seed, size, n_train, n_test_good, n_test_per_defect, cat)
        target = root / cat
        if target.exists():
            stamp = target / ".synthetic.json"
            try:
                old_params = json.loads(stamp.read_text())
            except (OSError, ValueError):
                old_params = None
            if old_params == params:
                continue
            drawing = ("version", "defects")  # what a new generator version may change
            outdated = (isinstance(old_params, dict) and old_params.get("version") != _VERSION
                        and {k: v for k, v in old_params.items() if k not in drawing}
                        == {k: v for k, v in params.items() if k not in drawing})
            if not (overwrite or outdated):  # an older generator version is simply redrawn
                why = "was made with other parameters" if stamp.is_file() else "has no .synthetic.json stamp"
                raise DataError(f"{target} already exists and {why}; pass overwrite=True to replace it "
                                f"(wanted {params})")
        tmp = Path(tempfile.mkdtemp(prefix=f".{cat}.tmp-", dir=root))
        try:
            _write_category(tmp, params)
            if target.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{cat}.old-", dir=root))
                os.replace(target, old / cat)
                shutil.rmtree(old)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return root


def save_examples_figure(root, out_png, categories: Optional[Sequence[str]] = None) -> Path:
    """Grid figure: per category one training image and one test image per defect, mask outlined."""
    from matplotlib.figure import Figure  # no pyplot: leaves the user's backend alone

    root = Path(root)
    cats = [c for c in (categories or SYNTHETIC_CATEGORIES) if (root / c).is_dir()]
    if not cats:
        raise DataError(f"no synthetic categories found in {root}; run make_synthetic first")
    ncol = 1 + max(len(CATEGORY_DEFECTS[c]) for c in cats)
    fig = Figure(figsize=(2.0 * ncol, 2.15 * len(cats)))
    axes = fig.subplots(len(cats), ncol, squeeze=False)
    for r, cat in enumerate(cats):
        cells = [("train / good", root / cat / "train" / "good" / "000.png", None)]
        for d in CATEGORY_DEFECTS[cat]:
            cells.append((f"{d} ({DEFECT_KINDS[d][0].upper()})", root / cat / "test" / d / "000.png",
                          root / cat / "ground_truth" / d / "000_mask.png"))
        for c in range(ncol):
            ax = axes[r, c]
            ax.axis("off")
            if c >= len(cells):
                continue
            title, img_path, mask_path = cells[c]
            ax.imshow(np.asarray(Image.open(img_path)))
            if mask_path is not None:
                ax.contour(np.asarray(Image.open(mask_path)) > 127, levels=[0.5], colors="white",
                           linewidths=0.8)
            ax.set_title(title, fontsize=8)
        axes[r, 0].text(-0.08, 0.5, cat, transform=axes[r, 0].transAxes, rotation=90,
                        va="center", ha="right", fontsize=10)
    fig.suptitle("Synthetic MVTec-format data (S = structural, L = logical; outline = mask)", fontsize=9)
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    buf.seek(0)  # a 256-colour palette keeps the noisy images' PNG small (< 500 KB)
    Image.open(buf).convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE).save(out_png, optimize=True)
    return out_png
