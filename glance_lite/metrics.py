"""Evaluation metrics for anomaly maps: AU-PRO, pixel AUROC and image AUROC.

The paper (Wang et al., "Glancing at the Patch", CVPR 2021) reports localisation
quality on MVTec AD with the per-region-overlap (PRO) protocol of Bergmann et al.
(paper Sec. 4.2): every connected ground-truth defect region counts equally, the
threshold is lowered until the false-positive rate (FPR) on anomaly-free pixels
reaches 30 %, and the area under PRO(FPR) up to that point, divided by 0.3, is
the score.  Image-level scores are the maximum of each map (supplementary
Sec. D.1) unless a method brings its own (Glance's, image_score.py).  Pixel/image AUROCs use
``sklearn.metrics.roc_auc_score``.

Conventions (the official MVTec AD evaluation code follows the same ones):

* regions are 8-connected components of each image's mask (3x3 structure);
* a pixel is "detected" at threshold ``t`` when ``score >= t``; the thresholds
  are the distinct score values, so tied pixels always enter together;
* FPR counts every mask-0 pixel of the test set (normal and defective images);
* PRO(t) is the mean over all regions of the test set of the detected fraction;
* the curve starts at (0, 0), is linear between vertices, is cut at
  FPR = ``limit`` by linear interpolation, and the area is divided by ``limit``.

All functions take numpy arrays: ``masks`` (N, H, W) bool or {0, 1} and
``maps`` (N, H, W) real scores (float32 is kept as is: no copy, half the memory).
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage
from sklearn.metrics import roc_auc_score

_EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity, as in the MVTec AD code


# --------------------------------------------------------------------------- checks
def _check(masks: ArrayLike, maps: ArrayLike,
           need_both: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """Validate and return ``(masks (N,H,W) bool, maps (N,H,W) float)``."""
    masks, maps = np.asarray(masks), np.asarray(maps)
    if masks.ndim != 3 or maps.ndim != 3:
        raise ValueError(f"expected 3-D arrays (N, H, W); got masks.ndim={masks.ndim}, "
                         f"maps.ndim={maps.ndim}")
    if masks.shape != maps.shape:
        raise ValueError(f"expected masks and maps of the same shape; got {masks.shape} "
                         f"and {maps.shape}")
    if masks.dtype != bool:
        if not np.all((masks == 0) | (masks == 1)):
            bad = np.unique(masks[(masks != 0) & (masks != 1)])[:5]
            raise ValueError(f"expected binary masks (bool or 0/1); got values such as {bad}")
        masks = masks.astype(bool)
    if not (np.issubdtype(maps.dtype, np.floating) or np.issubdtype(maps.dtype, np.integer)
            or maps.dtype == bool):
        raise ValueError(f"expected real-valued maps; got dtype {maps.dtype}")
    if maps.dtype == np.float16:
        maps = maps.astype(np.float32)  # exact, avoids slow half-precision sorting
    elif not np.issubdtype(maps.dtype, np.floating):
        maps = maps.astype(np.float64)
    if not np.isfinite(maps).all():
        raise ValueError(f"expected finite scores in maps; got {int(np.isnan(maps).sum())} NaN "
                         f"and {int(np.isinf(maps).sum())} inf values")
    if need_both:
        n_anom = int(np.count_nonzero(masks))
        if n_anom == 0:
            raise ValueError("expected at least one anomalous pixel (mask == 1); got none, "
                             "so the metric is undefined")
        if n_anom == masks.size:
            raise ValueError("expected at least one normal pixel (mask == 0); got none, "
                             "so the FPR is undefined")
    return masks, maps


def _check_limit(limit: float) -> float:
    """Return ``limit`` as float; it must lie in (0, 1]."""
    if not (isinstance(limit, (int, float, np.floating, np.integer)) and 0 < limit <= 1):
        raise ValueError(f"expected limit in (0, 1]; got {limit!r}")
    return float(limit)


# --------------------------------------------------------------------------- AU-PRO
def _region_pixels(masks: np.ndarray, maps: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Scores (A,) of all anomalous pixels and their PRO weights (A,).

    A pixel of region r gets weight 1 / (area_r * n_regions), so the weights of the
    detected pixels sum to PRO (the mean per-region detected fraction).
    """
    scores, areas, n_regions = [], [], 0
    for i in np.flatnonzero(masks.reshape(len(masks), -1).any(axis=1)):
        labels, n = ndimage.label(masks[i], structure=_EIGHT)
        ids = labels[masks[i]]                      # region id of each anomalous pixel
        areas.append(np.bincount(ids)[ids])         # area of the pixel's region
        scores.append(maps[i][masks[i]])
        n_regions += n
    return np.concatenate(scores), 1.0 / (np.concatenate(areas) * float(n_regions))


def _truncate(fpr: np.ndarray, pro: np.ndarray, limit: float) -> Tuple[np.ndarray, np.ndarray]:
    """Keep vertices with fpr <= limit and add the interpolated point at fpr == limit."""
    keep = fpr <= limit
    fpr_k, pro_k = fpr[keep], pro[keep]
    if fpr_k[-1] < limit:                            # next vertex lies beyond the limit
        j = np.count_nonzero(keep)
        x0, x1, y0, y1 = fpr[j - 1], fpr[j], pro[j - 1], pro[j]
        y = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
        fpr_k, pro_k = np.append(fpr_k, limit), np.append(pro_k, y)
    return fpr_k, pro_k


def pro_curve(masks: ArrayLike, maps: ArrayLike,
              limit: float = 0.3) -> Tuple[np.ndarray, np.ndarray]:
    """Exact PRO curve up to ``FPR = limit``: arrays ``fpr (K,)``, ``pro (K,)``.

    Exact without sorting all N*H*W scores:

    1. Normal pixels only move the curve right, so only thresholds down to ``v``, the
       k-th largest normal score with k the first count giving FPR > limit, matter.
       ``v`` comes from ``np.partition`` (linear time); only normal scores >= v
       (about ``limit`` of them) are sorted.
    2. Anomalous pixels (few) are sorted; cumulative weights give PRO at the end of
       each tie group b_1 > b_2 > ... .
    3. Between two anomalous tie groups only normal pixels enter, so the curve is
       horizontal there; its vertices are (#normal > b_j, PRO_{j-1}) and
       (#normal >= b_j, PRO_j), counted by ``searchsorted`` in the sorted normals.

    The returned vertices are those of the full tie-group curve minus intermediate
    points on horizontal runs (collinear, so area and interpolation are unchanged),
    starting at (0, 0) and ending with the interpolated point at ``limit``.
    Cost for 1725 x 256 x 256 float32 maps on 2 cores: about 1.5-3 s and one extra copy
    of the normal scores in memory.
    """
    limit = _check_limit(limit)
    masks, maps = _check(masks, maps)
    a_scores, a_weights = _region_pixels(masks, maps)
    normal = maps[~masks]                                      # (n_normal,) copy
    n = normal.size
    k = int(np.floor(limit * n)) + 1                           # smallest k with k/n > limit
    while k > 1 and (k - 1) / n > limit:
        k -= 1
    while k <= n and k / n <= limit:
        k += 1
    if k <= n:
        normal.partition(n - k)                                # in place, linear time
        v = normal[n - k]                                      # k-th largest normal score
        normal = np.sort(normal[normal >= v])
    else:                                                      # limit == 1: everything
        v = -np.inf
        normal.sort()
    order = np.argsort(-a_scores, kind="stable")
    a_sorted = a_scores[order]                                 # descending
    cum = np.cumsum(a_weights[order])
    ends = np.append(a_sorted[1:] != a_sorted[:-1], True)      # last pixel of each tie group
    b, pro_b = a_sorted[ends], cum[ends]
    inside = b >= v
    b, pro_b = b[inside], pro_b[inside]
    n_sel = normal.size
    n_gt = n_sel - np.searchsorted(normal, b, side="right")    # normal pixels > b
    n_ge = n_sel - np.searchsorted(normal, b, side="left")     # normal pixels >= b
    pro_prev = np.concatenate(([0.0], pro_b))[:-1]             # PRO before group j
    # closing vertex: after the last group >= v the curve stays flat at least until
    # FPR = #(normal >= v) / n, which is > limit (or == 1 when limit == 1)
    fpr = np.concatenate(([0.0], np.column_stack([n_gt, n_ge]).ravel() / n, [n_sel / n]))
    pro = np.concatenate(([0.0], np.column_stack([pro_prev, pro_b]).ravel(),
                          [pro_b[-1] if pro_b.size else 0.0]))
    # drop zero-length steps (a vertex repeated when no normal pixel lies in between)
    dup = np.append(False, (fpr[1:] == fpr[:-1]) & (pro[1:] == pro[:-1]))
    return _truncate(fpr[~dup], pro[~dup], limit)


def au_pro(masks: ArrayLike, maps: ArrayLike, limit: float = 0.3) -> float:
    """Normalised area under the PRO curve up to ``FPR = limit`` (paper Sec. 4.2).

    masks: (N, H, W) bool/{0,1}; maps: (N, H, W) float.  Returns a float in [0, 1]:
    1 for a perfect map, about ``limit / 2`` for random scores.
    """
    fpr, pro = pro_curve(masks, maps, limit)
    return float(np.sum(0.5 * (pro[1:] + pro[:-1]) * np.diff(fpr)) / limit)


def pro_reference(masks: ArrayLike, maps: ArrayLike, limit: float = 0.3,
                  thresholds: Optional[Sequence[float]] = None) -> float:
    """Slow, literal AU-PRO: one pass over the data per threshold (small inputs only).

    ``thresholds`` default to all distinct scores; the curve always starts at (0, 0)
    and ends at (1, 1) (everything detected).
    """
    limit = _check_limit(limit)
    masks, maps = _check(masks, maps)
    regions = []
    for i in range(len(masks)):
        labels, n = ndimage.label(masks[i], structure=_EIGHT)
        regions += [(i, labels == r) for r in range(1, n + 1)]
    ts = np.unique(maps) if thresholds is None else np.unique(np.asarray(thresholds))
    fpr, pro = [0.0], [0.0]
    for t in ts[::-1]:
        detected = maps >= t
        fpr.append(np.count_nonzero(detected & ~masks) / np.count_nonzero(~masks))
        pro.append(np.mean([detected[i][region].mean() for i, region in regions]))
    fpr, pro = np.array(fpr + [1.0]), np.array(pro + [1.0])
    fpr, pro = _truncate(fpr, pro, limit)
    return float(np.trapezoid(pro, fpr) / limit)


# --------------------------------------------------------------------------- AUROCs
def pixel_auroc(masks: ArrayLike, maps: ArrayLike) -> float:
    """Pixel-level AUROC over all N*H*W pixels (``roc_auc_score`` on flattened arrays)."""
    masks, maps = _check(masks, maps)
    return float(roc_auc_score(masks.ravel(), maps.ravel()))


def image_scores(maps: ArrayLike) -> np.ndarray:
    """Image anomaly scores (N,): the maximum of each (H, W) map (supplementary D.1)."""
    maps = np.asarray(maps)
    if maps.ndim != 3:
        raise ValueError(f"expected maps of shape (N, H, W); got shape {maps.shape}")
    return maps.reshape(len(maps), -1).max(axis=1)


def image_auroc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Image-level AUROC; labels (N,) 0/1 (1 = defective), scores (N,)."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    if labels.ndim != 1 or labels.shape != scores.shape:
        raise ValueError(f"expected 1-D labels and scores of the same length; got shapes "
                         f"{labels.shape} and {scores.shape}")
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError(f"expected labels in {{0, 1}}; got values {np.unique(labels)[:5]}")
    if not np.isfinite(scores).all():
        raise ValueError("expected finite scores; got NaN or inf")
    if np.unique(labels).size < 2:
        raise ValueError(f"expected both classes in labels; got only {np.unique(labels)}")
    return float(roc_auc_score(labels.astype(int), scores))


# --------------------------------------------------------------------------- report
def _subset_metrics(masks: np.ndarray, maps: np.ndarray, labels: np.ndarray,
                    limit: float, scores: Optional[np.ndarray] = None) -> Dict[str, Optional[float]]:
    """Metrics of one subset; ``None`` where a metric is undefined there. With image `scores`
    (N,), image_auroc ranks by them and image_auroc_max by the maps' maxima (supp. D.1)."""
    n_anom = int(np.count_nonzero(masks))
    pixels_ok = 0 < n_anom < masks.size
    both = np.unique(labels).size == 2
    out = {
        "pro": au_pro(masks, maps, limit) if pixels_ok else None,
        "pixel_auroc": pixel_auroc(masks, maps) if pixels_ok else None,
        "image_auroc": (image_auroc(labels, image_scores(maps) if scores is None else scores)
                        if both else None),
    }
    if scores is not None:
        out["image_auroc_max"] = image_auroc(labels, image_scores(maps)) if both else None
    return out


def evaluate_maps(masks: ArrayLike, maps: ArrayLike, labels: ArrayLike,
                  defects: Sequence[str],
                  kinds: Optional[Mapping[str, str]] = None, limit: float = 0.3,
                  scores: Optional[ArrayLike] = None) -> dict:
    """All metrics, overall and per defect type (and per kind), JSON-ready floats.

    masks, maps: (N, H, W); labels: (N,) 0 = good, 1 = defective; defects: (N,)
    defect-type names (any name for good images).  Each defect type is scored on its
    own images together with all good images; ``kinds`` (defect -> e.g. "structural"
    or "logical") also scores the union of each kind's defects plus all good images.
    ``n_images`` is the number of images of that defect type / kind (good excluded).
    ``scores`` (N,): the method's own image scores (Glance's, image_score.py); without them an
    image scores the maximum of its map (supp. D.1).
    Raises ValueError when the whole set has no anomalous pixel.
    """
    masks, maps = _check(masks, maps, need_both=False)
    labels, defects = np.asarray(labels), np.asarray(defects, dtype=object)
    if labels.shape != (len(masks),) or defects.shape != (len(masks),):
        raise ValueError(f"expected labels and defects of shape ({len(masks)},); got "
                         f"{labels.shape} and {defects.shape}")
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError(f"expected labels in {{0, 1}}; got values {np.unique(labels)[:5]}")
    good = labels == 0
    out: dict = {"pro": au_pro(masks, maps, limit)}
    if scores is not None:
        scores = np.asarray(scores, dtype=float)
        if scores.shape != (len(masks),):
            raise ValueError(f"expected image scores of shape ({len(masks)},); got {scores.shape}")
    pick = lambda idx: None if scores is None else scores[idx]  # noqa: E731
    out.update({k: v for k, v in _subset_metrics(masks, maps, labels, limit, scores).items()
                if k != "pro"})
    groups: dict = {"per_defect": {d: (defects == d) & ~good
                                   for d in sorted(set(defects[~good]))}, "per_kind": {}}
    if kinds is not None:
        for kind in sorted(set(kinds.values())):
            names = [d for d, kd in kinds.items() if kd == kind]
            groups["per_kind"][kind] = np.isin(defects, names) & ~good
    for key, subsets in groups.items():
        out[key] = {}
        for name, sel in subsets.items():
            idx = sel | good
            res = _subset_metrics(masks[idx], maps[idx], labels[idx], limit, pick(idx))
            out[key][str(name)] = {**res, "n_images": int(np.count_nonzero(sel))}
    return out


def metrics_table(rows: Mapping[str, Mapping]) -> str:
    """{name: metrics of `evaluate_maps`} -> an aligned text table: PRO, pixel / image AUROC, PRO
    per defect kind, and seconds per image when every row has `seconds_per_image`."""
    timed = all("seconds_per_image" in m for m in rows.values())
    head = (f"{'':<22}{'PRO':>7}{'pixAUROC':>10}{'imgAUROC':>10}{'PRO struct':>12}{'PRO logic':>11}"
            + (f"{'s/image':>10}" if timed else ""))
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [head, "-" * len(head)]
    for name, m in rows.items():
        kinds = m.get("per_kind", {})
        lines.append(f"{name:<22}{fmt(m['pro']):>7}{fmt(m['pixel_auroc']):>10}{fmt(m['image_auroc']):>10}"
                     f"{fmt(kinds.get('structural', {}).get('pro')):>12}{fmt(kinds.get('logical', {}).get('pro')):>11}"
                     + (f"{m['seconds_per_image']:>10.3f}" if timed else ""))
    return "\n".join(lines)

