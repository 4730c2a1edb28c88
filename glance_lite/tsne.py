"""What the two heads see: t-SNE of local and global features of abnormal patches (paper Fig. 5).

The paper crops 800 random patches from defective test images, keeps the abnormal ones, and
shows their local features Z_l (circles) and global features Z_g (triangles) "under the
metric" of each head, coloured by the fraction of the patch covered by the ground truth.

"Under the metric of a head" is our reading, stated here so it can be checked:
  * IAD view: the dissimilarity of two features a, b is the IAD score itself,
    d(a, b) = (1/n) ||a - b||^2 (Eq. 11), i.e. squared Euclidean distance;
  * DAD view: the dissimilarity is the DAD score of the pair, symmetrised,
    d(a, b) = (s_DAD(a, b) + s_DAD(b, a)) / 2 with s_DAD(a, b) = 1 - C(a, b) (Eq. 12),
    and d(a, a) set to 0.
Both matrices are fed to scikit-learn's TSNE with metric="precomputed". A head that separates
an abnormal patch's local feature from its global feature puts circles and triangles apart.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .heads import DADHead, dad_score
from .patches import PATCH_SIZE, crop, hole_masks
from .teacher import normalize


@dataclass
class PatchSample:
    """Patches drawn from test images: which image, where, and how anomalous."""

    image_index: torch.Tensor   # (M,)
    top_left: torch.Tensor      # (M, 2)
    ratio: torch.Tensor         # (M,) fraction of the 33x33 patch inside the ground-truth mask


def sample_patches(masks: torch.Tensor, n_patches: int = 800, only_abnormal: bool = True,
                   labels: torch.Tensor | None = None, size: int = PATCH_SIZE, seed: int = 0) -> PatchSample:
    """Draw `n_patches` random patches from the defective images (labels == 1, or images with a
    non-empty mask) and keep those with a positive anomalous-area ratio when `only_abnormal`."""
    masks = masks[:, 0] if masks.dim() == 4 else masks
    defective = (labels == 1) if labels is not None else masks.flatten(1).amax(1) > 0
    pool = torch.nonzero(defective).flatten()
    if len(pool) == 0:
        raise ValueError("no defective image to sample abnormal patches from")
    g = torch.Generator().manual_seed(seed)
    img = pool[torch.randint(0, len(pool), (n_patches,), generator=g)]
    tl = torch.randint(0, masks.shape[-1] - size + 1, (n_patches, 2), generator=g)
    ratio = crop(masks[img, None].float(), tl[:, None], size)[:, 0, 0].mean(dim=(1, 2))
    keep = ratio > 0 if only_abnormal else torch.ones_like(ratio, dtype=torch.bool)
    return PatchSample(img[keep], tl[keep], ratio[keep])


@torch.no_grad()
def pair_features(local_net, global_net, images: torch.Tensor, sample: PatchSample,
                  batch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """(Z_l, Z_g) of every sampled patch and its surroundings, each (M, 128)."""
    local_net.eval()
    global_net.eval()
    zl, zg = [], []
    for s in range(0, len(sample.ratio), batch):
        idx, tl = sample.image_index[s:s + batch], sample.top_left[s:s + batch]
        imgs = images[idx]
        zl.append(local_net(normalize(crop(imgs, tl[:, None], PATCH_SIZE)[:, 0])))
        zg.append(global_net(normalize(imgs), hole_masks(tl, imgs.shape[-1], PATCH_SIZE)))
    return torch.cat(zl), torch.cat(zg)


def iad_dissimilarity(features: torch.Tensor) -> np.ndarray:
    """(P,128) -> (P,P) matrix of IAD scores (1/n)||a - b||^2 between all pairs."""
    d = torch.cdist(features.double(), features.double()).pow(2) / features.shape[1]
    return d.clamp_min(0).numpy()


@torch.no_grad()
def dad_dissimilarity(head: DADHead, features: torch.Tensor, chunk: int = 4096) -> np.ndarray:
    """(P,128) -> (P,P) symmetrised DAD scores; the diagonal is 0."""
    head.eval()
    p = features.shape[0]
    a = features.repeat_interleave(p, 0)
    b = features.repeat(p, 1)
    out = torch.cat([dad_score(head, a[i:i + chunk], b[i:i + chunk]) for i in range(0, p * p, chunk)])
    d = out.view(p, p).double()
    d = (d + d.t()) / 2
    d.fill_diagonal_(0.0)
    return d.clamp_min(0).numpy()


def embed(dissimilarity: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE embedding of a precomputed dissimilarity matrix (P,P) -> (P,2)."""
    from sklearn.manifold import TSNE
    p = dissimilarity.shape[0]
    perplexity = float(min(perplexity, max(2.0, (p - 1) / 3)))
    tsne = TSNE(n_components=2, metric="precomputed", init="random", random_state=seed,
                perplexity=perplexity)
    return tsne.fit_transform(dissimilarity)


def separation(dissimilarity: np.ndarray, n_local: int) -> float:
    """How well a head's dissimilarity tells local features (first n_local rows) from global
    ones (the rest): the silhouette of the two groups under the precomputed `dissimilarity`
    (P,P), in [-1, 1]; about 0 when Z_l and Z_g are mixed, 1 when each group is tight and far from
    the other. Measured on the dissimilarities, not on the t-SNE layout, whose distances mean little."""
    from sklearn.metrics import silhouette_score
    labels = np.r_[np.zeros(n_local, dtype=int), np.ones(dissimilarity.shape[0] - n_local, dtype=int)]
    d = np.array(dissimilarity, dtype=np.float64)
    np.fill_diagonal(d, 0.0)
    return float(silhouette_score(d, labels, metric="precomputed"))


def feature_views(model, images: torch.Tensor, masks: torch.Tensor, labels: torch.Tensor | None = None,
                  n_patches: int = 800, seed: int = 0) -> dict:
    """Everything Fig. 5 needs for one category: {"ratio", "n", "iad", "dad", "iad_dissimilarity",
    "dad_dissimilarity"}: "iad"/"dad" are (2M,2) t-SNE embeddings of the (2M,2M) dissimilarities,
    local features first (M rows), then global (M rows)."""
    sample = sample_patches(masks, n_patches, labels=labels, seed=seed)
    if len(sample.ratio) < 4:
        raise ValueError(f"only {len(sample.ratio)} abnormal patches among {n_patches}; draw more")
    zl, zg = pair_features(model.local_net, model.global_net, images, sample)
    scaler = getattr(model, "scaler", None)  # Z_l in the units Global-Net predicts (context_train.py)
    feats = torch.cat([scaler(zl) if scaler is not None else zl, zg])
    d_iad, d_dad = iad_dissimilarity(feats), dad_dissimilarity(model.head, feats)
    return {"ratio": sample.ratio.numpy(), "n": len(sample.ratio), "iad": embed(d_iad, seed),
            "dad": embed(d_dad, seed), "iad_dissimilarity": d_iad, "dad_dissimilarity": d_dad}


def plot_views(views: dict, title: str = "", axes=None):
    """Two panels (IAD view, DAD view): circles = local, triangles = global, colour = ratio."""
    import matplotlib.pyplot as plt
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    n, ratio = views["n"], views["ratio"]
    sc = None
    for ax, key in zip(axes, ("iad", "dad")):
        e = views[key]
        sc = ax.scatter(e[:n, 0], e[:n, 1], c=ratio, cmap="viridis", marker="o", s=14, vmin=0, vmax=1,
                        label="local Z_l")
        ax.scatter(e[n:, 0], e[n:, 1], c=ratio, cmap="viridis", marker="^", s=18, vmin=0, vmax=1,
                   edgecolors="k", linewidths=0.3, label="global Z_g")
        sep = separation(views[f"{key}_dissimilarity"], n)
        ax.set_title(f"{title} - {key.upper()} view (separation {sep:.2f})", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(fontsize=7, loc="best")
    if sc is not None:
        plt.colorbar(sc, ax=list(axes), shrink=0.8, label="anomalous area ratio of the patch")
    return axes
