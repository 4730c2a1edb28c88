"""MVTec AD loader (paper Sec. 4.1): anomaly-free training images, labelled test images.

Expected layout (the official one; any category name works, so the synthetic
data of :mod:`glance_lite.data.synthetic` loads the same way)::

    ROOT/CATEGORY/train/good/*.png                  anomaly-free training images
    ROOT/CATEGORY/test/good/*.png                   anomaly-free test images (empty masks)
    ROOT/CATEGORY/test/<defect>/<stem>.png          anomalous test images
    ROOT/CATEGORY/ground_truth/<defect>/<stem>_mask.png

Rules: extensions .png/.jpg/.jpeg/.bmp/.tif/.tiff in any case; hidden files are
ignored; files are read in sorted name order (defect folders too, ``good``
first), so the order is deterministic.  Images of different sizes or modes may
be mixed in one split: each is converted to RGB (see :mod:`.images`) and
resized to ``image_size``.  Only ``train/good`` is read for the training split,
as in the paper's protocol of training on normal images only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

import torch

from .errors import DataError
from .images import IMAGE_EXTENSIONS, PathLike, is_image_name, list_image_files, load_mask, read_image

GOOD = "good"


@dataclass
class MVTecSplit:
    """One split of one category, fully loaded in memory.

    Attributes:
        images:  FloatTensor (N, 3, S, S) in [0, 1].
        masks:   FloatTensor (N, 1, S, S) in {0, 1}; all zero for good images.
        labels:  LongTensor (N,), 0 = good, 1 = anomalous.
        defects: list of N defect folder names ("good", "scratch", ...).
        paths:   list of N image file paths (as strings).
    """

    images: torch.Tensor
    masks: torch.Tensor
    labels: torch.Tensor
    defects: List[str] = field(default_factory=list)
    paths: List[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _visible_dirs(folder: Path) -> List[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.name)


def list_categories(root: PathLike) -> List[str]:
    """Sorted names of the sub-folders of ``root`` that contain a ``train`` or ``test`` folder."""
    root = Path(root)
    if not root.is_dir():
        return []
    return [p.name for p in _visible_dirs(root) if (p / "train").is_dir() or (p / "test").is_dir()]


def _mask_index(gt_dir: Path) -> Dict[str, Path]:
    """Map image stem -> mask file for every ``<stem>_mask.<image ext>`` in ``gt_dir``."""
    if not gt_dir.is_dir():
        return {}
    index = {}
    for p in sorted(gt_dir.iterdir(), key=lambda p: p.name):
        if p.is_file() and not p.name.startswith(".") and is_image_name(p) and p.stem.endswith("_mask"):
            index.setdefault(p.stem[: -len("_mask")], p)
    return index


def _image_files(folder: Path, what: str) -> List[Path]:
    if not folder.is_dir():
        raise DataError(f"missing folder {folder}: expected {what}")
    files = list_image_files(folder)
    if not files:
        raise DataError(f"folder {folder} has no images: expected {what} "
                        f"(extensions {', '.join(IMAGE_EXTENSIONS)})")
    return files


def _train_entries(cat_dir: Path) -> list[tuple[Path, str, Path | None]]:
    """(image path, defect name, mask path or None) of train/good."""
    return [(f, GOOD, None) for f in _image_files(cat_dir / "train" / GOOD, "anomaly-free training images in train/good")]


def _test_entries(cat_dir: Path) -> list[tuple[Path, str, Path | None]]:
    """(image path, defect name, mask path or None) of every test/<defect> folder, good first;
    DataError for a defective image without its mask."""
    test_dir = cat_dir / "test"
    if not test_dir.is_dir():
        raise DataError(f"missing folder {test_dir}: expected test/<defect>/ image folders")
    defect_dirs = sorted(_visible_dirs(test_dir), key=lambda p: (p.name != GOOD, p.name))
    if not defect_dirs:
        raise DataError(f"folder {test_dir} has no defect folders: expected e.g. test/good/")
    entries = []
    for d in defect_dirs:
        gt_dir = cat_dir / "ground_truth" / d.name
        mask_index = _mask_index(gt_dir) if d.name != GOOD else {}
        for f in _image_files(d, f"test images of defect type {d.name!r}"):
            mask = mask_index.get(f.stem)
            if d.name != GOOD and mask is None:
                raise DataError(f"defective test image {f} has no mask: expected "
                                f"{gt_dir / (f.stem + '_mask.png')}")
            entries.append((f, d.name, mask if d.name != GOOD else None))
    return entries


def load_mvtec(root: PathLike, category: str, split: str = "train", image_size: int = 256) -> MVTecSplit:
    """Load one split of one MVTec-AD-layout category.

    Args:
        root: dataset root holding one folder per category.
        category: e.g. "bottle" or a synthetic one like "circuit".
        split: "train" (train/good only) or "test" (all defect folders).
        image_size: side S of the square output images and masks.
    Returns:
        MVTecSplit with images (N, 3, S, S), masks (N, 1, S, S), labels (N,).
    Raises:
        DataError: unknown category, missing/empty folders, unreadable files,
            a defective image without its mask, or a mask whose size differs
            from its image.
    """
    root = Path(root)
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    if not root.is_dir():
        raise DataError(f"dataset root {root} does not exist or is not a folder")
    cat_dir = root / category
    if not cat_dir.is_dir() or category.startswith("."):
        found = list_categories(root)
        raise DataError(f"unknown category {category!r} in {root}: found categories "
                        f"{found if found else '(none)'}")

    entries = _train_entries(cat_dir) if split == "train" else _test_entries(cat_dir)
    n, s = len(entries), image_size
    images = torch.empty(n, 3, s, s)
    masks = torch.zeros(n, 1, s, s)
    labels = torch.zeros(n, dtype=torch.long)
    for i, (f, defect, mask_path) in enumerate(entries):
        images[i], original = read_image(f, s)
        if mask_path is not None:
            masks[i] = load_mask(mask_path, s, original_size=original, image_path=f)
            labels[i] = 1
    return MVTecSplit(images=images, masks=masks, labels=labels,
                      defects=[e[1] for e in entries], paths=[str(e[0]) for e in entries])
