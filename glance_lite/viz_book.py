"""Figures of the teaching book, one helper per kind of picture.

The chapters are the notebooks in book/. A chapter keeps the computation that teaches (the loop
of Eq. 5, the model calls, the PRO steps); the matplotlib set-up lives
here, each helper naming the chapters and paper sections it serves. Figures are built with the
object API (`matplotlib.figure.Figure`, no pyplot: a notebook's backend is never switched) and
returned; a notebook shows one by making it the cell's last expression or with `display(fig)`.
Text and tables (glue, metrics and API tables) are in book_text.py.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from .patches import PATCH_SIZE

ArrayLike = Any  # a torch.Tensor or a numpy array


def _np(x: ArrayLike) -> np.ndarray:
    """Tensor or array -> float numpy array (booleans become 0/1)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().float().numpy()
    a = np.asarray(x)
    return a.astype(float) if a.dtype == bool else a


def _2d(x: ArrayLike) -> np.ndarray:
    """A map `(h, w)` or `(1, h, w)` -> `(h, w)` (a 1x1 map stays 2-D)."""
    a = _np(x)
    return a.reshape(a.shape[-2:])


def _rgb(x: ArrayLike) -> np.ndarray:
    """An image `(3, H, W)` in [0, 1] -> `(H, W, 3)` for imshow; `(H, W)` passes through."""
    a = _np(x)
    if a.ndim == 3 and a.shape[0] in (1, 3):
        a = np.moveaxis(a, 0, -1)
        a = a[..., 0] if a.shape[-1] == 1 else a
    return np.clip(a, 0, 1) if a.ndim == 3 else a


def image_grid(rows: Sequence[Sequence[ArrayLike]], titles: Sequence[Sequence[str]] | None = None,
               row_labels: Sequence[str] | None = None, title: str | None = None,
               cell: tuple[float, float] = (1.9, 1.9), fontsize: float = 8) -> Figure:
    """A grid of RGB images (patches or whole images), with titles and row labels.

    `rows` holds images `(3, H, W)` in [0, 1], e.g. patches `(3, 33, 33)`, one axes each, with an
    optional title per image, a label per row and a title on top.

    Serves ch. 1 (a test patch above its nearest training patch, Sec. 4.1), ch. 2 (nearest
    neighbours in Local-Net's feature space, Sec. 3.1), ch. 4 (what Global-Net imagines in the hole,
    Eq. 6-7), ch. 5 (patches p and stained negatives p⁻, Sec. 3.2) and ch. 9 (one-class samples,
    Sec. 4.3). Rows may differ in length; the grid is as wide as the longest row.
    """
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig = Figure(figsize=(cell[0] * n_cols, cell[1] * n_rows + (0.3 if title else 0.0)),
                 layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for i, row in enumerate(rows):
        for j, ax in enumerate(axes[i]):
            if j >= len(row):
                ax.axis("off")
                continue
            ax.imshow(_rgb(row[j]))
            if titles is not None and j < len(titles[i]) and titles[i][j]:
                ax.set_title(titles[i][j], fontsize=fontsize)
            ax.set_xticks([])
            ax.set_yticks([])
            if row_labels is None:
                ax.axis("off")
        if row_labels is not None:
            axes[i, 0].set_ylabel(row_labels[i], fontsize=fontsize + 1)
    if title:
        fig.suptitle(title, fontsize=fontsize + 2)
    return fig


def loss_curves(log: Mapping[str, Mapping[str, np.ndarray]], panels: Sequence[tuple[str, Sequence[str]]],
                titles: Sequence[str] | None = None, log_scale: bool | Sequence[bool] = True,
                smooth: int = 25, panel_size: tuple[float, float] = (5.0, 3.3)) -> Figure:
    """Training curves of a run, one panel per phase and group of losses.

    `log` is `explorer.read_log`'s `{phase: {"step": (T,), loss: (T,)}}`; one panel per `(phase,
    loss names)`, each loss raw (faint) and as a moving average of `smooth` steps (solid, labelled).
    A phase missing from the log gets a panel that says so.

    Serves ch. 2 (l_k and l_c of Eq. 1-3, distillation and fine-tuning) and ch. 9 (l_IAD and l_DAD
    of Eq. 7 and 9 in one-class training, supp. C.2).
    """
    scales = [log_scale] * len(panels) if isinstance(log_scale, bool) else list(log_scale)
    fig = Figure(figsize=(panel_size[0] * len(panels), panel_size[1]), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for k, (ax, (phase, keys)) in enumerate(zip(axes, panels)):
        ax.set_title(titles[k] if titles else f"{phase}: {', '.join(keys)}", fontsize=10)
        if phase not in log:
            ax.text(0.5, 0.5, f"no '{phase}' steps in this run", ha="center", transform=ax.transAxes)
            continue
        steps = np.asarray(log[phase]["step"])
        for key in keys:
            y = np.asarray(log[phase][key], dtype=float)
            w = max(1, min(smooth, len(y)))
            line, = ax.plot(steps, y, alpha=0.3)
            ax.plot(steps[w - 1:], np.convolve(y, np.ones(w) / w, mode="valid"),
                    color=line.get_color(), label=key)
        if scales[k]:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    return fig


def score_histograms(groups: Mapping[str, ArrayLike], xlabel: str, title: str | None = None,
                     bins: int = 30, size: tuple[float, float] = (6.0, 3.0)) -> Figure:
    """Overlaid histograms of scores, one per group of patches or images.

    `groups` maps a label to scores `(N,)`, e.g. {"real p": ..., "stained p-": ...}.

    Serves ch. 5 (s_DAD of real against stained patches, Eq. 12) and ch. 9 (the score s of the
    normal class against the other classes, Eq. 13 in the one-class protocol, Sec. 4.3).
    """
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.subplots()
    for name, values in groups.items():
        ax.hist(_np(values).ravel(), bins=bins, alpha=0.6, label=name)
    ax.set_xlabel(xlabel)
    ax.legend()
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def r2_bars(r2: Mapping[str, float], names: Mapping[str, str], title: str = "") -> Figure:
    """Bars of R² for Global-Net and the predictors that ignore the surroundings.

    `r2` is `diagnostics.context_r2`'s dict; the first key of `names` (Global-Net) is drawn on top
    and highlighted, the baselines grey, with a line at 0 (the constant guess).

    Serves ch. 4: does Global-Net predict Z_l from the surroundings (Eq. 6-7)?
    """
    keys = list(names)[::-1]
    fig = Figure(figsize=(5.0, 0.4 + 0.55 * len(keys)), layout="constrained")
    ax = fig.subplots()
    ax.barh([names[k] for k in keys], [float(r2[k]) for k in keys],
            color=["grey"] * (len(keys) - 1) + ["tab:blue"])
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("R² on normal test patches")
    ax.set_title(title, fontsize=10)
    return fig


def ablation_dots(rows: Mapping[str, Mapping[str, float]], columns: Mapping[str, str],
                  band: Mapping[str, float] | None = None, title: str = "") -> Figure:
    """One panel per metric, one row per run: `rows` {run name: {metric key: value}}, the first run
    the reference (blue dot and dashed line), each other run a dot joined to the reference by a
    segment, so that its length is the change; `columns` {metric key: axis label}; `band` {metric
    key: half-width}: a shaded band around the reference (e.g. what a second seed moved).

    Serves ch. 11: the short profiles' training changes switched off one at a time.
    """
    names = list(rows)[::-1]
    fig = Figure(figsize=(2.2 * len(columns) + 2.8, 0.6 + 0.4 * len(names)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(columns), sharey=True))
    for ax, (key, label) in zip(axes, columns.items()):
        values = np.array([float(rows[n][key]) for n in names])
        ref = values[-1]
        ax.hlines(range(len(names)), ref, values, color="grey")
        ax.scatter(values, range(len(names)), color=["grey"] * (len(names) - 1) + ["tab:blue"], zorder=3)
        ax.axvline(ref, color="tab:blue", ls="--", lw=0.8)
        if band and key in band:
            ax.axvspan(ref - band[key], ref + band[key], color="tab:blue", alpha=0.12, lw=0)
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel(label, fontsize=9)
    fig.suptitle(title, fontsize=10)
    return fig


def raster_grid_figure(image: ArrayLike, top_left: ArrayLike, centres: ArrayLike,
                       boxes: Sequence[int] = (), patch_size: int = PATCH_SIZE, title: str | None = None) -> Figure:
    """An image with the raster grid of test-time patches drawn on it.

    The image is `(3, H, W)`; the centres `(P, 2)` (row, col) of the grid's patches are red dots,
    and the patches numbered in `boxes` (top-left corners from `top_left` `(P, 2)`) as coloured
    squares of side `patch_size`.

    Serves ch. 6: the K×K test-time grid of overlapping 33×33 patches (supp. D, Sec. 3.3).
    """
    from matplotlib.patches import Rectangle

    fig = Figure(figsize=(4.5, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.imshow(_rgb(image))
    tl, c = _np(top_left), _np(centres)
    for colour, k in zip(["yellow", "cyan", "magenta", "white", "orange", "lime"], boxes):
        ax.add_patch(Rectangle((tl[k, 1], tl[k, 0]), patch_size, patch_size, fill=False, color=colour))
    ax.plot(c[:, 1], c[:, 0], "r.", ms=2)
    if title:
        ax.set_title(title, fontsize=9)
    ax.axis("off")
    return fig


def map_grid(maps: Mapping[str, ArrayLike], images: ArrayLike | None = None, masks: ArrayLike | None = None,
             row_titles: Sequence[str] | None = None, cmap: str | Mapping[str, str] = "jet",
             limits: tuple[float, float] | None = None, colorbar: bool | Sequence[str] = False,
             cell: tuple[float, float] = (2.4, 2.4), fontsize: float = 9) -> Figure:
    """Score maps side by side, one row per image, optionally after the image itself.

    Each row shows the image `(3, H, W)` with its ground truth `(H, W)` outlined in white (when
    `images` / `masks` `(N, ...)` are given, titled by `row_titles`), then one panel per entry of
    `maps` (`{title: (N, h, w)}`: score maps, per-patch score grids, region labels).

    `cmap` is one colour map or one per map title; `limits` fixes vmin/vmax of every map; `colorbar`
    adds a colour bar to every map (True) or to the named ones. Serves ch. 3 (plain against partial
    convolution, Eq. 5), ch. 6 (per-patch scores, Eq. 11-13, and interpolations, Sec. 3.3), ch. 7
    (connected regions for PRO, Sec. 4.2) and ch. 10 (Glance, local-only and MFFA-lite maps side by
    side, paper Fig. 4).
    """
    names = list(maps)
    n = len(next(iter(maps.values())))
    lead = images is not None
    fig = Figure(figsize=(cell[0] * (len(names) + lead), cell[1] * n), layout="constrained")
    axes = fig.subplots(n, len(names) + lead, squeeze=False)
    for i in range(n):
        if lead:
            axes[i, 0].imshow(_rgb(images[i]))
            m = None if masks is None else _2d(masks[i])
            if m is not None and m.min() < 0.5 < m.max():
                axes[i, 0].contour(m, [0.5], colors="w", linewidths=0.8)
            if row_titles is not None:
                axes[i, 0].set_title(row_titles[i], fontsize=fontsize)
        for ax, name in zip(axes[i, int(lead):], names):
            cm = cmap.get(name, "jet") if isinstance(cmap, Mapping) else cmap
            vmin, vmax = limits if limits is not None else (None, None)
            shown = ax.imshow(_2d(maps[name][i]), cmap=cm, vmin=vmin, vmax=vmax,
                              interpolation="nearest")
            ax.set_title(name, fontsize=fontsize)
            if colorbar is True or (not isinstance(colorbar, bool) and name in colorbar):
                fig.colorbar(shown, ax=ax, shrink=0.8)
        for ax in axes[i]:
            ax.axis("off")
    return fig


def mask_plan_figure(m0: ArrayLike, masks: Sequence[ArrayLike], names: Sequence[str]) -> Figure:
    """The hole mask before and after every partial convolution of Global-Net.

    Shows M0 `(H, W)` (0 = hole) and the updated mask `(h_i, w_i)` after every partial convolution,
    titled with the layer, its size and the hole's size in pixels.

    Serves ch. 3: how the mask of Eq. 5 travels through Global-Net (supp. Tab. 2) and the hole
    shrinks until it disappears.
    """
    panels = [("M0", _2d(m0))] + [(n, _2d(m)) for n, m in zip(names, masks)]
    fig = Figure(figsize=(2.0 * len(panels), 2.4), layout="constrained")
    for ax, (name, m) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        ax.imshow(m, cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{name} {m.shape[0]}x{m.shape[1]}\nhole: {int((m == 0).sum())} px", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def pro_curve_figure(curves: Mapping[str, tuple[ArrayLike, ArrayLike]], fpr_limit: float = 0.3) -> Figure:
    """PRO curves against the false-positive rate, with the integration limit marked.

    One line per `{label: (fpr (T,), pro (T,))}`, the first solid, the others dashed.

    Serves ch. 7: the PRO curve and its normalised area up to FPR 0.3 (Sec. 4.2, after Bergmann et
    al.).
    """
    fig = Figure(figsize=(5.0, 3.4), layout="constrained")
    ax = fig.subplots()
    for k, (label, (fpr, pro)) in enumerate(curves.items()):
        ax.plot(_np(fpr), _np(pro), "-" if k == 0 else "--", label=label)
    ax.axvline(fpr_limit, color="gray", lw=0.8)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("PRO")
    ax.set_title(f"PRO curve up to FPR {fpr_limit:g}", fontsize=10)
    ax.legend()
    return fig
