"""load_mvtec on a tiny MVTec-AD-layout tree written by the test (paper Sec. 4.1 layout)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from glance_lite.data import DataError, MVTecSplit, list_categories, load_mvtec


def _save(path: Path, arr: np.ndarray, mode=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (Image.fromarray(arr) if mode is None else Image.fromarray(arr).convert(mode)).save(path)
    return path


def make_tree(root: Path) -> Path:
    """toy/ with 3 train images (RGB, gray, other size), 2 good + 2 scratch test images."""
    rng = np.random.default_rng(0)
    cat = root / "toy"
    _save(cat / "train/good/000.png", rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    _save(cat / "train/good/001.png", np.full((40, 40), 128, np.uint8))               # grayscale L
    _save(cat / "train/good/002.JPG", rng.integers(0, 256, (64, 48, 3), dtype=np.uint8))  # other size
    (cat / "train/good/.DS_Store").write_bytes(b"junk")                               # hidden: ignored
    for i in range(2):
        _save(cat / f"test/good/{i:03d}.png", rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    for i in range(2):
        _save(cat / f"test/scratch/{i:03d}.png", rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
        m = np.zeros((40, 40), np.uint8)
        m[10:20, 5 + i:30] = 255
        _save(cat / f"ground_truth/scratch/{i:03d}_mask.png", m)
    return root


def test_train_split(tmp_path):
    root = make_tree(tmp_path)
    s = load_mvtec(root, "toy", "train", image_size=32)
    assert isinstance(s, MVTecSplit) and len(s) == 3
    assert s.images.shape == (3, 3, 32, 32) and s.images.dtype == torch.float32
    assert s.masks.shape == (3, 1, 32, 32) and s.masks.sum() == 0
    assert s.labels.dtype == torch.long and s.labels.tolist() == [0, 0, 0]
    assert s.defects == ["good"] * 3
    assert [Path(p).name for p in s.paths] == ["000.png", "001.png", "002.JPG"]  # sorted, hidden skipped
    gray = s.images[1]
    assert torch.allclose(gray[0], gray[1]) and torch.allclose(gray[0], gray[2])  # L -> 3 equal channels
    assert torch.allclose(gray, torch.full_like(gray, 128 / 255), atol=1e-5)
    assert 0.0 <= s.images.min() and s.images.max() <= 1.0


def test_test_split_labels_and_masks(tmp_path):
    root = make_tree(tmp_path)
    s = load_mvtec(root, "toy", "test", image_size=20)
    assert len(s) == 4 and s.defects == ["good", "good", "scratch", "scratch"]
    assert s.labels.tolist() == [0, 0, 1, 1]
    assert s.masks[:2].sum() == 0
    assert set(s.masks.unique().tolist()) <= {0.0, 1.0}
    # mask rows 10..19 of 40 -> rows 5..9 of 20 after nearest resize
    assert s.masks[2, 0, 5:10, 5:15].min() == 1 and s.masks[2, 0, :5].sum() == 0
    assert s.masks[2:].sum() > 0


def test_resize_of_default_size(tmp_path):
    root = make_tree(tmp_path)
    s = load_mvtec(root, "toy", "train")
    assert s.images.shape == (3, 3, 256, 256)


def test_list_categories_and_unknown(tmp_path):
    root = make_tree(tmp_path)
    (root / "notes").mkdir()  # no train/test inside: not a category
    assert list_categories(root) == ["toy"]
    with pytest.raises(DataError, match="unknown category 'bottle'.*toy"):
        load_mvtec(root, "bottle")


def test_bad_split_and_root(tmp_path):
    root = make_tree(tmp_path)
    with pytest.raises(DataError, match="split"):
        load_mvtec(root, "toy", "val")
    with pytest.raises(DataError, match="does not exist"):
        load_mvtec(tmp_path / "nowhere", "toy")


def test_deterministic_order(tmp_path):
    root = make_tree(tmp_path)
    a, b = load_mvtec(root, "toy", "test", 16), load_mvtec(root, "toy", "test", 16)
    assert a.paths == b.paths and torch.equal(a.images, b.images)
