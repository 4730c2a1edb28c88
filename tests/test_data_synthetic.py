"""The synthetic MVTec-format dataset: layout, determinism, exact masks, and the 'logical' property.

The last test is the point of the dataset (paper Sec. 4.2, Fig. 4): every
33x33 patch touching a *logical* defect has a near-duplicate among training
patches (so a purely local method cannot flag it), while patches touching a
*structural* defect do not.
"""

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage

from glance_lite.data import (DEFECT_KINDS, SYNTHETIC_CATEGORIES, DataError, list_categories, load_mvtec,
                              make_synthetic)
from glance_lite.data import synthetic
from glance_lite.data.synthetic import CATEGORY_DEFECTS, CATEGORY_TYPES, save_examples_figure

SMALL = dict(n_train=2, n_test_good=1, n_test_per_defect=1)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """The default-size dataset (60 train, 8 good, 6 per defect, 256 px), generated once."""
    out = tmp_path_factory.mktemp("synthetic")
    t = time.perf_counter()
    make_synthetic(out, seed=0)
    print(f"\nmake_synthetic (default size, {len(SYNTHETIC_CATEGORIES)} categories): "
          f"{time.perf_counter() - t:.1f} s")
    return out


@pytest.fixture(scope="module")
def splits(root):
    return {c: (load_mvtec(root, c, "train"), load_mvtec(root, c, "test")) for c in SYNTHETIC_CATEGORIES}


def test_categories_and_defect_kinds():
    types = [CATEGORY_TYPES[c] for c in SYNTHETIC_CATEGORIES]
    assert types.count("texture") >= 1 and types.count("object") >= 2
    for cat in SYNTHETIC_CATEGORIES:
        kinds = [DEFECT_KINDS[d] for d in CATEGORY_DEFECTS[cat]]
        assert "structural" in kinds and "logical" in kinds, cat
    assert set(DEFECT_KINDS.values()) == {"structural", "logical"}
    assert {d for ds in CATEGORY_DEFECTS.values() for d in ds} == set(DEFECT_KINDS)


def test_layout_and_labels(root, splits):
    assert list_categories(root) == sorted(SYNTHETIC_CATEGORIES)
    for cat, (train, test) in splits.items():
        assert len(train) == 60 and train.images.shape == (60, 3, 256, 256)
        assert train.labels.sum() == 0 and train.masks.sum() == 0
        assert sorted(set(test.defects)) == sorted({"good", *CATEGORY_DEFECTS[cat]})
        assert test.defects.count("good") == 8
        assert all(test.defects.count(d) == 6 for d in CATEGORY_DEFECTS[cat])
        good = torch.tensor([d == "good" for d in test.defects])
        assert torch.equal(test.labels, (~good).long())
        assert test.masks[good].sum() == 0                              # exactly empty for good
        assert (test.masks[~good].flatten(1).sum(1) > 0).all()          # non-empty for every defect
        for path in (root / cat / "ground_truth").rglob("*_mask.png"):  # masks stored as 0/255
            assert set(np.unique(np.asarray(Image.open(path)))) <= {0, 255}


def test_mask_components_match_the_defect(root):
    """Masks are the changed pixels: 'swap'/'misplaced' touch two parts, 'missing' and 'colour' one
    (fabric's logical defects change one dot, not a whole pattern line: its context must disagree)."""
    expected = {"swap": 2, "misplaced": 2, "missing": 1, "colour": 1}
    for cat in SYNTHETIC_CATEGORIES:
        for defect in set(CATEGORY_DEFECTS[cat]) & set(expected):
            for path in sorted((root / cat / "ground_truth" / defect).glob("*_mask.png")):
                _, n = ndimage.label(np.asarray(Image.open(path)) > 127)
                assert n == expected[defect], (path, n)


def test_deterministic_and_independent_of_counts(root, tmp_path):
    small = make_synthetic(tmp_path / "a", seed=0, **SMALL)
    other = make_synthetic(tmp_path / "b", seed=1, **SMALL)
    for rel in ["fabric/train/good/000.png", "circuit/test/swap/000.png",
                "cable/ground_truth/missing/000_mask.png", "circuit/test/good/000.png"]:
        assert (small / rel).read_bytes() == (root / rel).read_bytes(), rel
        assert (other / rel).read_bytes() != (root / rel).read_bytes() or rel.endswith("_mask.png"), rel


def test_stamp_reuse_refuse_and_overwrite(tmp_path):
    out = make_synthetic(tmp_path, categories=["cable"], **SMALL)
    f = out / "cable/train/good/000.png"
    stamp_time = f.stat().st_mtime_ns
    make_synthetic(tmp_path, categories=["cable"], **SMALL)              # same parameters: reused
    assert f.stat().st_mtime_ns == stamp_time
    with pytest.raises(DataError, match="other parameters"):
        make_synthetic(tmp_path, categories=["cable"], seed=3, **SMALL)
    make_synthetic(tmp_path, categories=["cable"], seed=3, overwrite=True, **SMALL)
    assert f.read_bytes() != b"" and f.stat().st_mtime_ns != stamp_time
    stamp = out / "cable" / ".synthetic.json"                           # older generator version: redrawn
    stamp.write_text(stamp.read_text().replace(f'"version": {synthetic._VERSION}', '"version": 0'))
    assert '"version": 0' in stamp.read_text()
    before = f.stat().st_mtime_ns
    make_synthetic(tmp_path, categories=["cable"], seed=3, **SMALL)
    assert f'"version": {synthetic._VERSION}' in stamp.read_text() and f.stat().st_mtime_ns != before
    old = stamp.read_text().replace(f'"version": {synthetic._VERSION}', '"version": 0')  # an older
    stamp.write_text(old.replace('"swap"', '"twist"'))          # version with other defects: redrawn too
    make_synthetic(tmp_path, categories=["cable"], seed=3, **SMALL)
    assert '"swap"' in stamp.read_text() and '"twist"' not in stamp.read_text()
    (tmp_path / "fabric").mkdir()
    (tmp_path / "fabric" / "mine.txt").write_text("user data")
    with pytest.raises(DataError, match="no .synthetic.json stamp"):
        make_synthetic(tmp_path, categories=["fabric"], **SMALL)
    assert (tmp_path / "fabric" / "mine.txt").exists()
    with pytest.raises(DataError, match="unknown synthetic category"):
        make_synthetic(tmp_path, categories=["bottle"])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    real = synthetic.render
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(synthetic, "render", flaky)
    with pytest.raises(KeyboardInterrupt):
        make_synthetic(tmp_path, categories=["circuit"], **SMALL)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------- the logical property
PATCH, POOL = 33, 2
N_REF, N_QUERY = 12, 64


def _patch_rows(images: torch.Tensor, stride: int, ref: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, L, D) flattened patches of side PATCH // POOL, lighting-normalised.

    Each patch is divided by its own per-channel mean and multiplied by the
    dataset's per-channel median ``ref`` (3,): a global lighting gain then
    cancels exactly, while the patch's content (shapes, colours) is kept.
    """
    k = PATCH // POOL
    rows = F.unfold(images, k, stride=stride).transpose(1, 2)  # (N, L, 3*k*k)
    rows = rows.unflatten(2, (3, k * k))
    rows = rows / rows.mean(dim=3, keepdim=True).clamp_min(1e-3) * ref[:, None]
    return rows.flatten(2)


def _nn_mse(cat, splits):
    """Nearest-training-patch MSE for patches of good / logical / structural test images.

    Images are average-pooled 2x (a 33 px window becomes 16x16) so the search
    over all stride-2 positions of N_REF training images stays cheap; queries
    are stride-8 windows overlapping the mask (any window for good images),
    not touching the image border, subsampled to N_QUERY per group.
    """
    train, test = splits[cat]
    ref = train.images.flatten(2).median(dim=2).values.mean(0)
    g = torch.Generator().manual_seed(0)
    n = (test.images.shape[-1] // POOL - PATCH // POOL) // (8 // POOL) + 1  # windows per row
    border = torch.zeros(n, n, dtype=torch.bool)
    border[1:-1, 1:-1] = True  # skip windows touching the image border: fewer shifted
    inner = border.flatten()   # copies of them exist in the training images
    queries = {}
    for group in ("good", "logical", "structural"):
        idx = [i for i, d in enumerate(test.defects)
               if (d == "good") == (group == "good") and (group == "good" or DEFECT_KINDS[d] == group)]
        p = _patch_rows(F.avg_pool2d(test.images[idx], POOL), 8 // POOL, ref)  # (n, L, D)
        cover = F.unfold(F.max_pool2d(test.masks[idx], POOL), PATCH // POOL, stride=8 // POOL).sum(1)
        keep = (cover > 0) if group != "good" else torch.ones_like(cover, dtype=torch.bool)
        keep &= inner[None]
        p = p[keep]
        queries[group] = p[torch.randperm(len(p), generator=g)[:N_QUERY]]
    q = torch.cat(list(queries.values()))
    best = torch.full((len(q),), float("inf"))
    for img in F.avg_pool2d(train.images[:N_REF], POOL):
        d = torch.cdist(q, _patch_rows(img[None], 1, ref)[0], compute_mode="use_mm_for_euclid_dist")
        best = torch.minimum(best, d.min(1).values)
    mse = best.clamp_min(0) ** 2 / q.shape[1]
    return dict(zip(queries, mse.split([len(v) for v in queries.values()])))


@pytest.mark.parametrize("cat", SYNTHETIC_CATEGORIES)
def test_logical_patches_look_normal_structural_do_not(cat, splits):
    d = _nn_mse(cat, splits)
    worst_normal = d["good"].max()
    tau = 1.5 * worst_normal       # "near-duplicate": as close as the worst-matched normal patch
    med = {k: float(v.median()) for k, v in d.items()}
    print(f"\n{cat}: median NN-MSE good {med['good']:.5f}, logical {med['logical']:.5f}, "
          f"structural {med['structural']:.5f}; tau {tau:.5f}")
    assert (d["logical"] <= tau).float().mean() >= 0.98
    assert d["logical"].quantile(0.9) <= 2.0 * d["good"].quantile(0.9)
    assert med["structural"] >= 8.0 * med["logical"]
    assert (d["structural"] > tau).float().mean() >= 0.5


def test_examples_figure(root, tmp_path):
    out = save_examples_figure(root, tmp_path / "ex.png")
    assert out.stat().st_size < 500_000
    assert Image.open(out).size[0] > 400
