"""Natural-image data: one-class splits (paper Sec. 4.1 / 4.3) and Local-Net distillation images.

* :func:`one_class_split` builds the GradCon protocol the paper follows for
  CIFAR-10: train on the training images of one class; test on that class'
  test images plus as many test images drawn at random from the other
  classes (label 1 = outlier).  ``dataset="digits"`` gives the same protocol on
  scikit-learn's bundled 8x8 handwritten digits, which needs no download.
* :func:`distillation_images` returns generic photographs for distilling the
  Local-Net from a pretrained network (the paper uses ImageNet, Sec. 4.2): Imagenette (ImageNet
  photographs of 10 classes, torchvision) where there is internet; offline,
  :func:`distillation_images_or_offline` falls back to scikit-learn's two bundled photographs.
* :func:`random_crops` cuts many random patches from such images at once.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..patches import PATCH_SIZE
from .errors import DataError
from .images import PathLike, list_image_files, load_image

__all__ = ["OneClassSplit", "one_class_split", "distillation_images", "distillation_images_or_offline",
           "random_crops"]


@dataclass
class OneClassSplit:
    """A one-class (novelty detection) split.

    Attributes:
        train: FloatTensor (N, 3, H, W) in [0, 1], all from the normal class.
        test: FloatTensor (M, 3, H, W) in [0, 1]: normal test images first, then outliers.
        test_labels: LongTensor (M,), 0 = normal class, 1 = outlier (anomalous).
    """

    train: torch.Tensor
    test: torch.Tensor
    test_labels: torch.Tensor

    def subset(self, n_train: int, n_test_per_label: int) -> "OneClassSplit":
        """The first `n_train` training images and the first `n_test_per_label` normal and outlier
        test images (the order is already random): the same protocol on less data."""
        keep = torch.cat([torch.nonzero(self.test_labels == y).flatten()[:n_test_per_label] for y in (0, 1)])
        return OneClassSplit(self.train[:n_train], self.test[keep], self.test_labels[keep])


def _to_float_nchw(x: np.ndarray, scale: float) -> torch.Tensor:
    """uint8/float array (N, H, W) or (N, H, W, 3) -> FloatTensor (N, 3, H, W) in [0, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(x)).float() / scale
    if t.dim() == 3:
        t = t[:, None].expand(-1, 3, -1, -1)
    else:
        t = t.permute(0, 3, 1, 2)
    return t.clamp(0.0, 1.0).contiguous()


def _resize(x: torch.Tensor, size: Optional[int]) -> torch.Tensor:
    if size is None or tuple(x.shape[-2:]) == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=True).clamp_(0.0, 1.0)


def _load_digits(seed: int):
    """sklearn digits (values 0..16), split 50/50 per class with a seeded permutation (stratified)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images, labels = d.images.astype(np.float32), d.target.astype(np.int64)  # (1797, 8, 8)
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        half = len(idx) // 2
        train_idx.append(idx[:half])
        test_idx.append(idx[half:])
    tr, te = np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(test_idx))
    return (images[tr], labels[tr]), (images[te], labels[te])


def _torchvision(name: str, root: PathLike, **kwargs):
    """A torchvision dataset from ``root``, downloaded there if absent; offline -> DataError."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, name)
    try:
        return cls(str(root), download=False, **kwargs)
    except RuntimeError:  # not there yet: try to download (needs internet)
        try:
            return cls(str(root), download=True, **kwargs)
        except Exception as exc:
            raise DataError(
                f"{name} is not in {root} and downloading it from {_source_url(cls, kwargs)} failed "
                f"({type(exc).__name__}: {exc}). The download needs internet access (it works on "
                "Colab); offline, use dataset='digits' / source='sklearn' (bundled with "
                "scikit-learn) instead."
            ) from exc


def _source_url(cls, kwargs: dict) -> str:
    """Where torchvision downloads a dataset class from (for error messages)."""
    if hasattr(cls, "_ARCHIVES"):  # Imagenette: one archive per image size
        return cls._ARCHIVES.get(kwargs.get("size", "full"), ("its server",))[0]
    return getattr(cls, "url", None) or getattr(cls, "_download_url_prefix", None) or "its server"


def _cifar10(root: PathLike, train: bool):
    """torchvision CIFAR-10 -> (uint8 (N, 32, 32, 3), labels (N,))."""
    ds = _torchvision("CIFAR10", root, train=train)
    return ds.data, np.asarray(ds.targets, dtype=np.int64)


def _photos(name: str, root: PathLike, side: int, max_images: int, **kwargs) -> torch.Tensor:
    """Training photographs of a torchvision dataset (Imagenette, Flowers-102), up to
    `max_images` spread evenly over it (its classes are stored in order), squashed to
    side x side -> (N, 3, side, side)."""
    ds = _torchvision(name, root, **kwargs)
    pick = np.linspace(0, len(ds) - 1, min(len(ds), max_images)).round().astype(int)
    out = torch.empty(len(pick), 3, side, side)
    for k, i in enumerate(pick):
        img = ds[int(i)][0].convert("RGB").resize((side, side), Image.BILINEAR, reducing_gap=2.0)
        out[k] = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return out


def one_class_split(dataset: str = "digits", normal_class: int = 0, root: PathLike = "data",
                    seed: int = 0, size: Optional[int] = None) -> OneClassSplit:
    """One-class split following GradCon's protocol (paper Sec. 4.1).

    Args:
        dataset: "digits" (offline, 8x8 gray, 10 classes) or "cifar10" (32x32, needs download).
        normal_class: the inlier class, 0..9.
        root: where CIFAR-10 is stored / downloaded (unused for digits).
        seed: controls the digits train/test split and which outliers are drawn.
        size: if given, images are resized (bilinear, antialiased) to size x size.
    Returns:
        OneClassSplit with train (N, 3, H, W), test (M, 3, H, W), test_labels (M,)
        where M = 2 * (number of normal-class test images).
    """
    if dataset == "digits":
        (xtr, ytr), (xte, yte) = _load_digits(seed)
        scale = 16.0
    elif dataset == "cifar10":
        xtr, ytr = _cifar10(root, True)
        xte, yte = _cifar10(root, False)
        scale = 255.0
    else:
        raise DataError(f"unknown dataset {dataset!r}; expected 'digits' or 'cifar10'")
    if normal_class not in range(10):
        raise DataError(f"normal_class must be an integer 0..9, got {normal_class!r}")
    rng = np.random.default_rng(seed)
    inliers = np.flatnonzero(yte == normal_class)
    outliers = np.sort(rng.choice(np.flatnonzero(yte != normal_class), size=len(inliers), replace=False))
    # select first, convert after: only the chosen images become float tensors
    train = _to_float_nchw(xtr[ytr == normal_class], scale)
    test = _to_float_nchw(xte[np.concatenate([inliers, outliers])], scale)
    labels = torch.cat([torch.zeros(len(inliers), dtype=torch.long), torch.ones(len(outliers), dtype=torch.long)])
    return OneClassSplit(train=_resize(train, size), test=_resize(test, size), test_labels=labels)


DOWNLOADED_SOURCES = ("imagenette", "flowers102", "cifar10")


def distillation_images(source: Union[str, PathLike] = "sklearn", root: PathLike = "data",
                        size: Optional[int] = None, max_images: int = 2000) -> torch.Tensor:
    """Generic natural images for distilling the Local-Net (ImageNet in the paper, Sec. 4.2).

    Args:
        source: "imagenette" (torchvision's Imagenette: ImageNet training photographs of 10
            classes, 160 px version, a 94 MB download; resized to ``size or 128``), "sklearn"
            (two bundled photographs, 427x640, offline), "cifar10" (training images, needs
            download; upsampled to ``size or 64`` so that 33x33 crops fit), "flowers102" (Oxford
            Flowers-102 training photographs, needs download, resized to ``size or 128``), or a
            folder of image files (each resized to ``size or 256``).
        root: where downloaded datasets are stored.
        size: see ``source``; for "sklearn", resizes to size x size if given.
        max_images: at most this many downloaded images (spread over the set), to bound memory.
    Returns:
        FloatTensor (N, 3, H, W) in [0, 1].
    """
    if source == "sklearn":
        from sklearn.datasets import load_sample_images

        x = _to_float_nchw(np.stack(load_sample_images().images), 255.0)
        return _resize(x, size)
    if source == "imagenette":
        return _photos("Imagenette", root, size or 128, max_images, split="train", size="160px")
    if source == "cifar10":
        data, _ = _cifar10(root, True)
        return _resize(_to_float_nchw(data[:max_images], 255.0), size or 64)
    if source == "flowers102":
        return _photos("Flowers102", root, size or 128, max_images, split="train")
    folder = Path(source)
    if not folder.is_dir():
        raise DataError(f"distillation source {source!r} is neither 'imagenette', 'sklearn', 'cifar10', "
                        "'flowers102' nor an existing folder")
    files = list_image_files(folder)
    if not files:
        raise DataError(f"folder {folder} contains no images for distillation")
    return torch.stack([load_image(f, size or 256) for f in files])


def distillation_images_or_offline(source: Union[str, PathLike] = "sklearn",
                                   root: PathLike = "data") -> tuple[torch.Tensor, str]:
    """`distillation_images(source)`, or, when a downloaded source cannot be had (offline), the
    bundled scikit-learn photographs -> (images (N, 3, H, W), the source actually used).
    The fallback is printed once, so a run never claims ImageNet photographs it did not see."""
    try:
        return distillation_images(source, root), str(source)
    except DataError as err:
        if source not in DOWNLOADED_SOURCES:
            raise
        print(f"NOTE: distillation images {source!r} unavailable ({str(err).split('. ')[0]}); "
              "distilling on scikit-learn's two bundled photographs instead", file=sys.stderr)
        return distillation_images("sklearn"), "sklearn"


def random_crops(images: torch.Tensor, n: int, size: int = PATCH_SIZE,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``n`` random size x size crops from random images, gathered in one indexing op.

    Args:
        images: (N, C, H, W) with H, W >= size.
        n: number of crops.
        size: crop side (33 = the paper's patch size).
        generator: optional torch.Generator for reproducibility.
    Returns:
        Tensor (n, C, size, size), same dtype as ``images``.
    """
    N, C, H, W = images.shape
    if H < size or W < size:
        raise DataError(f"images of size {H}x{W} are smaller than the crop size {size}")
    which = torch.randint(N, (n,), generator=generator)
    top = torch.randint(H - size + 1, (n,), generator=generator)
    left = torch.randint(W - size + 1, (n,), generator=generator)
    ar = torch.arange(size)
    rows = (top[:, None] + ar)[:, None, :, None]   # (n, 1, size, 1)
    cols = (left[:, None] + ar)[:, None, None, :]  # (n, 1, 1, size)
    chans = torch.arange(C)[None, :, None, None]   # (1, C, 1, 1)
    return images[which[:, None, None, None], chans, rows, cols]
