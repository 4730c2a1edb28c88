"""Losses (Eq. 1-3, 7, 9, 10) and the heads' conventions (Eq. 8, 11, 12)."""
import pytest
import torch

from glance_lite import DADHead, dad_score, iad_score
from glance_lite.heads import DISTORTED, MATCH
from glance_lite.losses import (compactness_loss, correlation_matrix, dad_loss, distillation_loss,
                                joint_loss, local_loss)


def _whitened(b=256, n=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(b, n, generator=g, dtype=torch.float64)
    z = z - z.mean(0)
    u, _, _ = torch.linalg.svd(z, full_matrices=False)  # columns orthonormal and zero-mean
    return u * 3.0


def test_compactness_is_zero_for_decorrelated_features():
    assert compactness_loss(_whitened()).item() == pytest.approx(0.0, abs=1e-12)


def test_compactness_small_for_independent_and_one_for_duplicates():
    g = torch.Generator().manual_seed(1)
    indep = compactness_loss(torch.randn(512, 128, generator=g)).item()
    base = torch.randn(512, 1, generator=g)
    dup = compactness_loss(base.repeat(1, 128) + 1e-4 * torch.randn(512, 128, generator=g)).item()
    assert 0 <= indep < 0.01  # ~1/B for independent features
    assert dup > 0.99


def test_compactness_never_negative_even_for_anticorrelated_pairs():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(64, 64, generator=g)
    z = torch.cat([a, -a], dim=1)  # literal sum of c_ij would be strongly negative
    assert correlation_matrix(z)[0, 64] == pytest.approx(-1.0, abs=1e-5)
    assert compactness_loss(z).item() > 0


def test_compactness_needs_two_samples():
    with pytest.raises(ValueError, match="at least 2"):
        compactness_loss(torch.randn(1, 128))


def test_distillation_loss_is_squared_l2():
    d, t = torch.zeros(2, 512), torch.zeros(2, 512)
    t[0, :4] = 1.0  # ||.||^2 = 4 for sample 0, 0 for sample 1 -> mean 2
    assert distillation_loss(d, t).item() == pytest.approx(2.0)
    total, parts = local_loss(d, t, torch.randn(8, 128)[:2], lambda_k=1.0, lambda_c=0.0)
    assert total.item() == pytest.approx(2.0) and parts["l_k"] == pytest.approx(2.0)


def test_iad_score_is_mean_squared_difference():
    zl, zg = torch.zeros(3, 128), torch.zeros(3, 128)
    zg[1] = 2.0
    assert torch.allclose(iad_score(zl, zg), torch.tensor([0.0, 4.0, 0.0]))
    with pytest.raises(ValueError, match="differ in shape"):
        iad_score(torch.zeros(2, 128), torch.zeros(2, 64))


def test_dad_convention_high_score_for_distorted():
    """Train the head briefly on separable pairs: real pairs must get low s_DAD, distorted high."""
    torch.manual_seed(0)
    head = DADHead()
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    zg = torch.randn(256, 128)
    real = zg + 0.05 * torch.randn(256, 128)  # local feature matches its surroundings
    fake = torch.randn(256, 128)  # does not
    z = torch.cat([real, fake])
    zgg = torch.cat([zg, zg])
    is_real = torch.cat([torch.ones(256, dtype=torch.bool), torch.zeros(256, dtype=torch.bool)])
    for _ in range(200):
        opt.zero_grad()
        dad_loss(head.logits(z, zgg), is_real).backward()
        opt.step()
    s = dad_score(head, z, zgg).detach()
    assert s[:256].mean() < 0.2 and s[256:].mean() > 0.8
    probs = head(z, zgg).detach()
    assert torch.allclose(s, 1 - probs[:, MATCH], atol=1e-6) and torch.equal(s, probs[:, DISTORTED])


def test_dad_loss_is_eq9_binary_cross_entropy():
    logits = torch.tensor([[2.0, 0.0], [0.5, 1.5]])
    p = logits.softmax(1)[:, MATCH]
    y = torch.tensor([1.0, 0.0])
    expected = -(y * p.log() + (1 - y) * (1 - p).log()).mean()
    assert dad_loss(logits, y.bool()).item() == pytest.approx(expected.item(), rel=1e-6)


def test_joint_loss_weights_dad_by_lambda_t():
    zl, zg = torch.zeros(4, 128), torch.ones(4, 128)
    logits = torch.zeros(4, 2)
    is_real = torch.tensor([True, False, True, False])
    total, parts = joint_loss(zl, zg, logits, is_real, lambda_t=0.01)
    assert parts["l_iad"] == pytest.approx(1.0)
    assert parts["l_dad"] == pytest.approx(torch.log(torch.tensor(2.0)).item(), rel=1e-6)
    assert total.item() == pytest.approx(1.0 + 0.01 * parts["l_dad"], rel=1e-6)


def test_hard_holes_weighting_is_eq7_at_gamma_zero_and_favours_the_worst_holes():
    from glance_lite.losses import joint_loss
    from glance_lite.profiles import get_profile
    from glance_lite.context_train import hard_gamma
    g = torch.Generator().manual_seed(0)
    z_l, z_g = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    z_g[0] += 5.0  # one hard hole
    logits, real = torch.zeros(2, 2), torch.tensor([True, False])
    plain, log0 = joint_loss(z_l, z_g, logits, real, 0.0)
    assert plain.item() == pytest.approx(iad_score(z_l, z_g).mean().item())
    hard, log1 = joint_loss(z_l, z_g, logits, real, 0.0, hard_gamma=1.0)
    assert hard.item() > plain.item()  # the hard hole weighs more than 1/6
    assert log1["l_iad"] == pytest.approx(log0["l_iad"])  # the log keeps Eq. 7's plain mean
    dev = get_profile("cpu", hard_holes_gamma=0.5, hard_holes_until=0.5).deviations
    assert [hard_gamma(dev, s, 1500) for s in (0, 749, 750, 1499)] == [0.5, 0.5, 0.0, 0.0]
    assert hard_gamma(get_profile("cpu").deviations, 0, 1500) == 0.5  # on in the short profiles ...
    assert hard_gamma(get_profile("paper").deviations, 0, 1500) == 0.0  # ... off in the paper's recipe
    assert get_profile("cpu").deviations.mismatch_negatives == 1.0
    assert get_profile("paper").deviations.mismatch_negatives == 0.0


@pytest.mark.parametrize("field,value", [("mismatch_negatives", 1.5), ("hard_holes_until", -0.1),
                                         ("hard_holes_gamma", -1.0), ("mismatch_negatives", "half")])
def test_new_options_refuse_values_out_of_range(field, value):
    from glance_lite.profiles import get_profile
    with pytest.raises(ValueError, match=f"{field} must be a number in"):
        get_profile("cpu", **{field: value})
