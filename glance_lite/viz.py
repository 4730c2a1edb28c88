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
