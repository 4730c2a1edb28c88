"""Figures: image | ground truth | score map grids (paper Fig. 3) and t-SNE views (Fig. 5)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def _np_img(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy()


def figure_grid(images: torch.Tensor, masks: torch.Tensor, maps: torch.Tensor, titles: list[str],
                path: str | Path | None = None, vmin: float | None = None, vmax: float | None = None,
                title: str | None = None):
    """One row per image: image `(3,H,W)`, ground truth `(1,H,W)`, score map `(H,W)`.

    Maps share one colour scale (the min/max over all shown maps unless vmin/vmax are given),
    shown by a colour bar "anomaly score s". `title` (e.g. profile, teacher and category) goes
    above the grid. Returns the matplotlib Figure; saves it when `path` is given.
    """
    # an explicit Figure (no pyplot): never switches the backend of a notebook that calls this
    from matplotlib.figure import Figure

    n = images.shape[0]
    vmin = float(maps.min()) if vmin is None else vmin
    vmax = float(maps.max()) if vmax is None else vmax
    fig = Figure(figsize=(8.2, 2.5 * n + (0.4 if title else 0.0)), layout="constrained")
    axes = fig.subplots(n, 3, squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(_np_img(images[i]))
        axes[i, 0].set_title(titles[i], fontsize=9)
        axes[i, 1].imshow(masks[i, 0].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
        axes[i, 1].set_title("ground truth", fontsize=9)
        shown = axes[i, 2].imshow(maps[i].cpu().numpy(), cmap="jet", vmin=vmin, vmax=vmax)
        axes[i, 2].set_title("score map", fontsize=9)
        for ax in axes[i]:
            ax.axis("off")
    fig.colorbar(shown, ax=axes[:, 2].tolist(), label="anomaly score s", shrink=min(1.0, 0.9 / n ** 0.5))
    if title:
        fig.suptitle(title, fontsize=10)
    if path is not None:
        fig.savefig(path, dpi=80)
    return fig


# (x, y) centre, text and colour of every box of `pipeline_diagram`, in figure units (0..10, 0..5)
_BOXES = {
    "image": ((0.9, 2.5), "test image I\n256×256", "#dddddd"),
    "patch": ((2.9, 3.8), "patch p\n33×33\n(20×20 grid)", "#f6e3b4"),
    "hole": ((2.9, 1.2), "I with hole M₀\n(p hidden)", "#f6e3b4"),
    "local": ((4.9, 3.8), "Local-Net\n(supp. Tab. 1)\n→ Z_l", "#b9d7ea"),
    "global": ((4.9, 1.2), "Global-Net\npartial conv. Eq. (5)\n(supp. Tab. 2) → Z_g", "#c8e6c9"),
    "iad": ((6.9, 3.3), "IAD head, Eq. (11)\ns_IAD = ‖Z_l − Z_g‖² / n", "#e1bee7"),
    "dad": ((6.9, 1.7), "DAD head, Eq. (12)\ns_DAD = 1 − C(Z_l, Z_g)", "#e1bee7"),
    "score": ((8.9, 2.5), "Eq. (13): s = λs s_IAD\n+ (1−λs) s_DAD\n→ IDW map (Sec. 3.3)", "#ffccbc"),
}
_ARROWS = [("image", "patch"), ("image", "hole"), ("patch", "local"), ("hole", "global"),
           ("local", "iad"), ("global", "iad"), ("local", "dad"), ("global", "dad"),
           ("iad", "score"), ("dad", "score")]


def pipeline_diagram(path: str | Path | None = None):
    """The method at a glance (paper Fig. 2, Sec. 3): image -> patch and image-with-hole ->
    Local-Net / Global-Net -> IAD and DAD heads -> combined score -> IDW map.

    Drawn with matplotlib from the two tables above; returns the Figure (saved when `path` is
    given). The book's notation page shows it next to the table of symbols.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    fig = Figure(figsize=(10, 5))
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 5)
    ax.axis("off")
    w, h = 1.7, 1.0
    for (x, y), text, colour in _BOXES.values():
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05",
                                    facecolor=colour, edgecolor="#444444"))
        ax.text(x, y, text, ha="center", va="center", fontsize=8.5)
    for a, b in _ARROWS:
        (xa, ya), (xb, yb) = _BOXES[a][0], _BOXES[b][0]
        ax.add_patch(FancyArrowPatch((xa + w / 2 + 0.05, ya), (xb - w / 2 - 0.05, yb),
                                     arrowstyle="-|>", mutation_scale=12, color="#444444"))
    ax.text(5.9, 4.75, "training only: Local-Net frozen, Global-Net + DAD head learn Eq. (10) "
            "from p and its stained copy p⁻", ha="center", fontsize=8, style="italic")
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig
