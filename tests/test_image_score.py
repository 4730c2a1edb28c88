"""The image-level score (image_score.py): leave-one-image-out training scores and the
per-position normalisation that ranks images (docs/deviations.md#image-score)."""
import numpy as np
import pytest
import torch

from glance_lite.heads import ResidualBank, ResidualWhitener
from glance_lite.image_score import PositionNorm, leave_one_out_scores
from glance_lite.metrics import evaluate_maps
from glance_lite.neighbours import nearest_distances


def test_nearest_distances_leaves_the_owner_out():
    g = torch.Generator().manual_seed(0)
    bank = torch.randn(50, 8, generator=g)
    owners_b = torch.arange(50) // 10  # five "images" of ten rows
    q = bank[[3, 17, 44]] + 0.01  # each query sits on a row of its own image
    owners_q = owners_b[[3, 17, 44]]
    plain = nearest_distances(q, bank)
    d, idx = nearest_distances(q, bank, return_index=True, owners=(owners_q, owners_b), max_chunk_bytes=400)
    full = torch.cdist(q, bank)
    full[owners_q[:, None] == owners_b[None, :]] = float("inf")
    assert plain.max() < 0.05 < d.min()  # the own row was the match; now it is excluded
    assert torch.allclose(d, full.min(1).values, atol=1e-4) and torch.equal(idx, full.argmin(1))
    assert (owners_b[idx] != owners_q).all()


def test_leave_one_out_scores_equal_a_bank_without_the_image():
    g = torch.Generator().manual_seed(1)
    res = torch.randn(4, 6, 128, generator=g)  # 4 images x 6 grid patches
    s_dad = torch.rand(4, 6, generator=g)
    whitener = ResidualWhitener()  # identity
    bank = ResidualBank().fit(res, s_dad)
    owners = torch.arange(4)
    s_iad, s_dad_loo = leave_one_out_scores(res, s_dad, owners, whitener, bank, owners.repeat_interleave(6))
    assert s_iad.shape == s_dad_loo.shape == (4, 6) and (s_iad > 0.5).all()  # not ~0: own rows left out
    for i in range(4):
        others = ResidualBank().fit(res[owners != i], s_dad[owners != i])
        d, j = others.search(res[i])
        assert torch.allclose(s_iad[i], d, atol=1e-3)
        assert torch.allclose(s_dad_loo[i], others.calibrate(s_dad[i], j), atol=1e-3)
    plain, _ = leave_one_out_scores(res, s_dad, owners, whitener, ResidualBank(), torch.zeros(0, dtype=torch.long))
    assert torch.allclose(plain, res.pow(2).mean(-1))  # no bank: Eq. 11's mean square, nothing left out


def test_position_norm_ranks_what_the_maximum_does_not():
    """Position 0 is loud on every normal image, position 5 quiet: a defect at 5 that the
    maximum ranks below a normal image ranks above it after the per-position scaling."""
    g = torch.Generator().manual_seed(2)
    normals = 0.1 + 0.01 * torch.rand(20, 9, generator=g)
    normals[:, 0] = 1.0 + 0.5 * torch.rand(20, generator=g)
    norm = PositionNorm().fit(normals, torch.zeros_like(normals))
    test_normal, defect = normals[0].clone(), normals[1].clone()
    test_normal[0], defect[0], defect[5] = 1.45, 1.0, 0.6
    s = torch.stack([test_normal, defect])
    assert PositionNorm().image_scores(s, torch.zeros_like(s), 1.0).argmax() == 0  # unfitted: the max
    assert norm.image_scores(s, torch.zeros_like(s), 1.0).argmax() == 1
    with pytest.raises(ValueError, match="fitted on 9 grid positions; these scores have 4"):
        norm.image_scores(torch.zeros(2, 4), torch.zeros(2, 4), 0.8)
    with pytest.raises(ValueError, match="M >= 2"):
        PositionNorm().fit(torch.zeros(1, 9), torch.zeros(1, 9))


def test_a_run_saved_before_the_norm_loads_unfitted():
    from glance_lite.model import Glance
    m = Glance("smoke")
    m.image_norm.fit(torch.rand(3, 36), torch.rand(3, 36))
    state = m.state_dict()
    again = Glance("smoke")
    again.load_state_dict(state)
    assert torch.equal(again.image_norm.iad, m.image_norm.iad)
    old = {k: v for k, v in state.items() if not k.startswith("image_norm.")}
    older = Glance("smoke")
    older.load_state_dict(old)  # strict, yet no missing key
    assert len(older.image_norm) == 0


def test_evaluate_maps_reports_both_image_scores():
    masks = np.zeros((4, 8, 8), bool)
    masks[2:, 3, 3] = True
    labels = np.array([0, 0, 1, 1])
    maps = np.zeros((4, 8, 8))
    maps[:, 3, 3] = [0.9, 0.1, 0.5, 0.6]  # the max ranks a normal image first
    maps[0, 0, 0] = 0.95
    out = evaluate_maps(masks, maps, labels, ["good", "good", "a", "b"], scores=np.array([0.0, 0.1, 1.0, 2.0]))
    assert out["image_auroc"] == 1.0 and out["image_auroc_max"] == 0.5
    assert out["per_defect"]["a"]["image_auroc"] == 1.0
    assert "image_auroc_max" not in evaluate_maps(masks, maps, labels, ["good", "good", "a", "b"])
    with pytest.raises(ValueError, match=r"image scores of shape \(4,\)"):
        evaluate_maps(masks, maps, labels, ["good", "good", "a", "b"], scores=np.zeros(3))


def test_fit_residual_model_fits_the_norm_on_left_out_scores():
    from glance_lite.context_train import fit_residual_model
    from glance_lite.model import Glance
    from glance_lite.patches import PatchGrid
    from glance_lite.profiles import get_profile
    torch.manual_seed(3)
    m = Glance(get_profile("smoke", global_arch="coords"))
    images, grid = torch.rand(4, 3, 256, 256), PatchGrid(per_side=3)
    fit_residual_model(m, images, grid, whiten=True, bank=True, max_whiten_images=2, dad=True, position_norm=True)
    assert m.image_norm.iad.shape == m.image_norm.dad.shape == (4, grid.n_patches)  # the bank's images
    assert (m.image_norm.iad > 0).all()  # scored without their own image in the bank
    m2 = Glance(get_profile("smoke", global_arch="coords"))
    fit_residual_model(m2, images, grid, whiten=True, bank=True, max_whiten_images=3, dad=True)
    assert len(m2.image_norm) == 0


def test_the_norm_is_used_only_where_the_profile_asks_for_it():
    from glance_lite.context_train import fit_residual_model
    from glance_lite.model import Glance
    from glance_lite.patches import PatchGrid
    from glance_lite.profiles import get_profile
    torch.manual_seed(4)
    images, grid = torch.rand(3, 3, 256, 256), PatchGrid(per_side=3)
    m = Glance(get_profile("smoke", global_arch="coords"))
    fit_residual_model(m, images, grid, whiten=True, bank=True, dad=True, position_norm=True)
    assert len(m.image_norm) == 3
    fit_residual_model(m, images, grid, whiten=True, bank=True, dad=True)  # re-fitted without it
    assert len(m.image_norm) == 0
    m.image_norm.fit(torch.rand(3, 36), torch.rand(3, 36))
    assert m.score(images[:1]).norm is m.image_norm  # smoke: SHORT deviations, our image score
    m.profile = get_profile("smoke", position_image_score=False)
    assert m.score(images[:1]).norm is None  # the paper's maximum of the map


def test_stored_scores_keep_the_norm_and_the_explorer_ranks_with_it(tmp_path):
    from glance_lite.evaluation import load_scores
    from glance_lite.explorer import ExplorerData
    g = torch.Generator().manual_seed(5)
    normals = torch.rand(6, 9, generator=g) * 0.1
    normals[:, 0] += 1.0  # a loud position
    s_iad = torch.rand(4, 9, generator=g) * 0.1
    s_iad[0, 0], s_iad[2, 4], s_iad[3, 4] = 1.2, 0.5, 0.6  # a good image loud where all are; defects at 4
    np.savez(tmp_path / "scores.npz", s_iad=s_iad.numpy(), s_dad=np.zeros((4, 9), np.float32),
             labels=np.array([0, 0, 1, 1]), defects=np.array(["good", "good", "a", "a"]), paths=np.array(["p"] * 4),
             grid_align=2, norm_iad=normals.numpy(), norm_dad=np.zeros((6, 9), np.float32))
    scores, meta = load_scores(tmp_path)
    assert torch.equal(scores.norm.iad, normals)
    masks = np.zeros((4, 256, 256), bool)
    masks[2:, 100:140, 100:140] = True
    data = ExplorerData.from_scores(scores, masks, meta["labels"], meta["defects"])
    assert data.metrics(1.0)["image_auroc"] == 1.0
    data.image_score = None  # the maximum of the map: the loud good image ranks first
    assert data.metrics(1.0)["image_auroc"] == 0.5
