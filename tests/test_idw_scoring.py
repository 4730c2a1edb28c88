"""IDW maps (Sec. 3.3, p = 5) and the scoring pipeline (Eq. 11-13)."""
import pytest
import torch

from glance_lite import GlobalNet, LocalNet, PatchGrid, combine, idw_maps, idw_matrix
from glance_lite.model import Glance
from glance_lite.profiles import get_profile
from glance_lite.scoring import patch_features, patch_features_naive


def _brute_force(scores, centres, h, w, p):
    out = torch.empty(h, w, dtype=torch.float64)
    for y in range(h):
        for x in range(w):
            d = ((centres[:, 0] - y) ** 2 + (centres[:, 1] - x) ** 2).sqrt()
            if (d == 0).any():
                out[y, x] = scores[d == 0][0]
            else:
                wts = d ** -p
                out[y, x] = (wts * scores).sum() / wts.sum()
    return out


def test_idw_matrix_equals_brute_force_loop():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[2.0, 3.0], [10.0, 1.0], [7.0, 12.0], [14.0, 14.0]])
    s = torch.rand(4, generator=g, dtype=torch.float64)
    w = idw_matrix(centres, 16, 16, power=5.0).double()
    assert torch.allclose((w @ s).view(16, 16), _brute_force(s, centres.double(), 16, 16, 5.0), atol=1e-6)


def test_idw_exact_at_centres_constant_and_bounded():
    grid = PatchGrid()
    s = torch.rand(3, 400, generator=torch.Generator().manual_seed(1))
    maps = idw_maps(s, grid)
    c = grid.centres.long()
    assert torch.allclose(maps[:, c[:, 0], c[:, 1]], s, atol=1e-6)
    assert (maps >= s.min(1).values.view(-1, 1, 1) - 1e-6).all()
    assert (maps <= s.max(1).values.view(-1, 1, 1) + 1e-6).all()
    const = idw_maps(torch.full((1, 400), 0.37), grid)
    assert torch.allclose(const, torch.full_like(const, 0.37), atol=1e-6)


def test_idw_rejects_wrong_shapes_and_nan():
    with pytest.raises(ValueError, match=r"\(N, 400\)"):
        idw_maps(torch.rand(2, 399))
    s = torch.rand(1, 400)
    s[0, 5] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        idw_maps(s)


def test_combine_is_eq13_and_checks_lambda():
    a, b = torch.tensor([1.0]), torch.tensor([0.0])
    assert combine(a, b, 0.8).item() == pytest.approx(0.8)
    assert combine(a, b, 0.0).item() == 0.0
    with pytest.raises(ValueError, match="lambda_s"):
        combine(a, b, 1.5)


def test_batched_features_equal_the_naive_loop():
    torch.manual_seed(0)
    L, G = LocalNet().eval(), GlobalNet().eval()
    grid = PatchGrid(per_side=3)
    imgs = torch.rand(2, 3, 256, 256)
    zl, zg = patch_features(L, G, imgs, grid, chunk=4)  # chunks straddle image boundaries
    rl, rg = patch_features_naive(L, G, imgs, grid)
    assert torch.allclose(zl, rl, atol=1e-5) and torch.allclose(zg, rg, atol=1e-5)


def test_glance_score_keeps_both_heads_and_rescoring_needs_no_network():
    torch.manual_seed(0)
    scores = Glance(get_profile("paper", grid_per_side=4)).score(torch.rand(2, 3, 256, 256))
    assert scores.s_iad.shape == scores.s_dad.shape == (2, 16)
    assert ((scores.s_dad >= 0) & (scores.s_dad <= 1)).all()
    m1, m0 = scores.maps(1.0), scores.maps(0.0)
    assert m1.shape == (2, 256, 256)
    assert torch.allclose(scores.maps(0.5), 0.5 * m1 + 0.5 * m0, atol=1e-6)  # IDW is linear


def test_glance_score_rejects_wrong_image_size():
    with pytest.raises(ValueError, match="256, 256"):
        Glance("paper").score(torch.rand(1, 3, 255, 255))


AMP_CASES = [("cpu", torch.bfloat16)] + ([("cuda", torch.bfloat16), ("cuda", torch.float16)]
                                         if torch.cuda.is_available() else [])
AMP_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16"}


@pytest.mark.parametrize("device, dtype", AMP_CASES)
def test_autocast_scores_agree_with_float32(device, dtype):
    """Mixed precision (the CUDA default of evaluation.py) keeps maps within a stated tolerance:
    s_IAD within 2 % and the IDW maps within 1 % of float32 (relative to their maximum)."""
    torch.manual_seed(0)
    model = Glance(get_profile("paper", grid_per_side=12)).to(device)  # 144 patches: the dense Local-Net path too
    imgs = torch.rand(2, 3, 256, 256)
    full = model.score(imgs, amp="off")
    half = model.score(imgs, amp=AMP_NAMES[dtype])
    rel = lambda a, b: ((a - b).abs().max() / a.abs().max()).item()  # noqa: E731
    assert rel(full.s_iad, half.s_iad) < 2e-2
    assert rel(full.s_dad, half.s_dad) < 2e-2
    assert rel(full.maps(), half.maps()) < 1e-2


@pytest.mark.parametrize("device, dtype", AMP_CASES)
def test_autocast_leaves_local_net_in_float32(device, dtype):
    """Z_l is standardised and its residual whitened, which magnifies rounding (scoring.py):
    under amp only Global-Net runs in low precision, Z_l is exactly float32's."""
    torch.manual_seed(0)
    L, G = LocalNet().to(device).eval(), GlobalNet().to(device).eval()
    imgs, grid = torch.rand(1, 3, 256, 256), PatchGrid(per_side=6)
    zl, zg = patch_features(L, G, imgs, grid)
    zl_amp, zg_amp = patch_features(L, G, imgs, grid, amp_dtype=dtype)
    assert torch.equal(zl, zl_amp)
    assert not torch.equal(zg, zg_amp)  # Global-Net did run in low precision
