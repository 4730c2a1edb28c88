"""Context training (context_train.py), the "coords" Global-Net and the R^2 diagnostic."""
import math
from dataclasses import replace

import pytest
import torch

from glance_lite import GlobalNet, normalize
from glance_lite.context_train import (FeatureScaler, context_step, fit_prior, lattice, local_targets,
                                       layout_r2, mismatch_partners, shifted_holes)
from glance_lite.diagnostics import context_r2, r2
from glance_lite.fast_global import features_at, hole_free_front, window_side
from glance_lite.global_net import hole_centres
from glance_lite.model import Glance, load_model, save_model
from glance_lite.patches import crop, hole_masks
from glance_lite.profiles import SHORT, get_profile
from glance_lite.training import lr_factor, step_generator


@pytest.mark.parametrize("arch,fused", [("paper", True), ("coords", True), ("centred", True), ("centred", False)])
def test_training_path_equals_global_net_and_has_gradients(arch, fused):
    """features_at without a precomputed plan (training) = GlobalNet.forward, and backpropagates
    (for "centred": both the fused read of the moved map and the copy-paste-move reference)."""
    torch.manual_seed(0)
    net = GlobalNet(arch=arch)
    if arch != "paper":
        torch.nn.init.normal_(net.prior)
    imgs = normalize(torch.rand(2, 3, 256, 256))
    tl = torch.tensor([[0, 0], [223, 223], [100, 36], [4, 200], [223, 0]])
    idx = torch.tensor([0, 1, 0, 1, 1])
    ref = net(imgs[idx], hole_masks(tl, 256, 33))
    ref.pow(2).sum().backward()
    ref_grads = {k: p.grad.clone() for k, p in net.named_parameters()}
    net.zero_grad()
    z = features_at(net, imgs, hole_free_front(net, imgs), idx, tl, 33, window_side(33), fused=fused)
    assert torch.allclose(z, ref, atol=1e-5)
    z.pow(2).sum().backward()
    assert net.pconv0.weight.grad.abs().sum() > 0 and net.pconv4.weight.grad.abs().sum() > 0
    for k, p in net.named_parameters():  # the same gradients as the plain network's
        assert torch.allclose(p.grad, ref_grads[k], rtol=1e-3, atol=1e-5 * ref_grads[k].abs().max()), k
    if arch != "paper":
        assert net.prior.grad.abs().sum() > 0


def test_hole_centres_come_from_the_mask():
    tl = torch.tensor([[0, 0], [10, 200], [223, 5]])
    assert torch.allclose(hole_centres(hole_masks(tl, 256, 33)), tl.float() + 16)


def test_coords_net_knows_where_the_hole_is():
    """Same image, two hole positions: the coords prior alone separates them."""
    torch.manual_seed(1)
    net = GlobalNet(arch="coords").eval()
    with torch.no_grad():
        net.prior.zero_()
        net.prior[:, 0, 1, 1] = 5.0  # a bump at the knot nearest to (16, 16) only
        img = torch.zeros(1, 3, 256, 256)
        near = net(img, hole_masks(torch.tensor([[0, 0]]), 256, 33))
        far = net(img, hole_masks(torch.tensor([[200, 200]]), 256, 33))
    assert near[0, 0] - far[0, 0] > 1.0


def test_unknown_arch_is_refused_with_the_valid_values():
    with pytest.raises(ValueError, match="paper, coords, centred"):
        GlobalNet(arch="nope")
    with pytest.raises(ValueError, match="paper, coords, centred"):
        get_profile("smoke", global_arch="nope")


def test_a_loaded_model_has_the_architecture_and_profile_it_was_saved_with(tmp_path):
    m = Glance(get_profile("smoke", global_arch="coords", grid_per_side=5))
    save_model(tmp_path / "g.pt", m, m.config)
    model = load_model(tmp_path / "g.pt")
    assert model.global_net.arch == "coords" and model.profile == m.profile and model.grid.per_side == 5


def test_scaler_standardises_and_travels_with_the_model(tmp_path):
    z = torch.randn(500, 128) * 0.1 + 5.0
    model = Glance()
    model.scaler.fit(z)
    s = model.scaler(z)
    assert s.mean(0).abs().max() < 1e-4 and (s.std(0) - 1).abs().max() < 1e-3
    save_model(tmp_path / "g.pt", model, model.config)
    loaded = load_model(tmp_path / "g.pt")
    assert torch.equal(loaded.scaler.mean, model.scaler.mean)


def test_lattice_and_targets_match_local_net_on_crops():
    pos = lattice(stride=64)
    assert pos.shape == (16, 2) and (pos % 64 == 0).all() and pos.max() <= 223
    with pytest.raises(ValueError, match="even"):
        lattice(stride=5)
    torch.manual_seed(2)
    model = Glance().eval()
    imgs = torch.rand(2, 3, 256, 256)
    t = local_targets(model.local_net, imgs, pos, dtype=torch.float32)
    with torch.no_grad():
        ref = model.local_net(normalize(crop(imgs, pos, 33).flatten(0, 1))).view(2, 16, -1)
    assert torch.allclose(t, ref, atol=1e-4)


def test_prior_fit_recovers_a_smooth_position_mean():
    pos = lattice(stride=8)
    c = pos.float() + 16
    means = torch.stack([torch.sin(c[:, 0] / 60), torch.cos(c[:, 1] / 50), c[:, 0] / 256 - c[:, 1] / 256], 1)
    means = torch.cat([means, torch.zeros(len(pos), 125)], 1)
    net = GlobalNet(arch="coords")
    assert fit_prior(net, pos, means) > 0.99
    with torch.no_grad():
        assert r2(net.position_prior(c)[:, :3], means[:, :3]) > 0.99


@pytest.mark.parametrize("mismatch", [0.0, 1.0])
def test_context_step_trains_global_net_and_head_not_local_net(mismatch):
    torch.manual_seed(3)
    model = Glance(get_profile("smoke", global_arch="coords"))
    model.local_net.requires_grad_(False)
    imgs = torch.rand(3, 3, 256, 256)
    pos = lattice(stride=64)
    tg = local_targets(model.local_net, imgs, pos)
    model.scaler.fit(tg.float())
    dev = replace(SHORT, holes_per_image=5, dad_holes=4, context_shift=0, mismatch_negatives=mismatch)
    ctx = {"targets": tg, "positions": pos, "shift": 0}
    loss, parts = context_step(model, imgs, ctx, step_generator(0, "t", 0), 2, dev, 0.01, torch.device("cpu"))
    loss.backward()
    assert math.isfinite(loss.item()) and set(parts) == {"l_iad", "l_dad", "loss"}
    assert model.global_net.pconv2_1.weight.grad.abs().sum() > 0
    assert model.head.fc0.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.local_net.parameters())


def test_mismatch_partners_are_other_holes_of_the_same_image():
    g = torch.Generator().manual_seed(0)
    part = mismatch_partners(32, 16, g)
    b = torch.arange(32)
    assert (part // 16 == b // 16).all() and (part != b).all() and (part < 32).all()
    assert len(set(part[:16].tolist())) > 4  # drawn at random, not a fixed shift


def test_shifted_holes_keep_each_hole_on_its_target_patch():
    """A moved image's patch at every drawn hole is the original patch its target came from."""
    imgs = torch.rand(4, 3, 256, 256)
    pos = lattice(stride=4)
    moved, pick, tl = shifted_holes(imgs, pos, 60, 8, torch.Generator().manual_seed(0))
    src = pos[pick].view(-1, 2)
    which = torch.arange(4).repeat_interleave(60)
    assert torch.equal(crop(moved[which], tl.unsqueeze(1), 33), crop(imgs[which], src.unsqueeze(1), 33))
    assert tl.min() >= 0 and tl.max() <= 256 - 33                     # every hole inside the image
    moves = (tl - src).view(4, 60, 2)
    assert (moves == moves[:, :1]).all() and moves.abs().max() <= 8   # one move per image, bounded
    assert len(moves[:, 0].unique(dim=0)) > 1                         # and the images move differently
    # with shifts the step still trains (and 0 keeps the paper's unshifted draw)
    model = Glance(get_profile("smoke", global_arch="coords"))
    model.local_net.requires_grad_(False)
    tg = local_targets(model.local_net, imgs[:2], lattice(stride=32))
    ctx = {"targets": tg, "positions": lattice(stride=32), "shift": 64}
    dev = replace(SHORT, holes_per_image=5, dad_holes=4)
    loss, _ = context_step(model, imgs[:2], ctx, step_generator(0, "t", 0), 2, dev, 0.01, torch.device("cpu"))
    loss.backward()
    assert math.isfinite(loss.item()) and model.global_net.pconv2_1.weight.grad.abs().sum() > 0


def test_layout_r2_tells_fixed_layouts_from_varying_ones():
    """layout_r2: ~1 when every image has the same targets at each position, ~0 when the targets
    at a position are unrelated from image to image (then the shifts are used)."""
    g = torch.Generator().manual_seed(0)
    layout = torch.randn(1, 50, 128, generator=g)
    fixed = layout + 0.1 * torch.randn(40, 50, 128, generator=g)
    varying = torch.randn(40, 50, 128, generator=g)
    scaler = FeatureScaler()
    assert layout_r2(fixed, scaler.fit(fixed)) > 0.95
    assert abs(layout_r2(varying, scaler.fit(varying))) < 0.1
    dev = get_profile("cpu").deviations
    assert dev.context_shift > 0 and 0 < dev.shift_below_layout_r2 < 1


def test_lr_schedule_warms_up_then_decays():
    prof = get_profile("cpu", train_steps=100, lr_warmup=0.1)
    f = [lr_factor(prof, s) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[9:], f[10:])) and f[-1] < 0.01
    assert lr_factor(get_profile("paper"), 1234) == 1.0


def test_r2_of_the_trivial_predictors():
    torch.manual_seed(4)
    pos_mean = torch.randn(1, 9, 128)
    train = pos_mean + 0.1 * torch.randn(20, 9, 128)
    test = pos_mean + 0.1 * torch.randn(5, 9, 128)
    r = context_r2(test, test + 0.01 * torch.randn_like(test), train)
    assert r["r2_global"] > 0.99 and r["r2_position_mean"] > 0.95 and abs(r["r2_constant"]) < 0.05
    r = context_r2(test, train.mean((0, 1)).expand_as(test), train)  # a constant "Global-Net"
    assert r["r2_global"] < r["r2_position_mean"]


def test_whitener_makes_normal_residuals_isotropic_and_is_identity_unfitted():
    from glance_lite.heads import ResidualWhitener, iad_score
    torch.manual_seed(5)
    mix = torch.randn(128, 128)
    r = torch.randn(4000, 128) @ mix.t()  # correlated residuals
    w = ResidualWhitener()
    z_l, z_g = torch.randn(6, 128), torch.randn(6, 128)
    assert torch.allclose(iad_score(z_l, z_g, w), iad_score(z_l, z_g))  # W = I: Eq. 11
    w.fit(r, shrink=0.0)
    cov = torch.cov(w(r).t())
    assert torch.allclose(cov, torch.eye(128), atol=1e-3)
    # a residual along a direction where normal residuals never go scores higher than a typical one
    u, s, vh = torch.linalg.svd(mix)
    rare, common = u[:, -1] * s.mean(), u[:, 0] * s.mean()
    assert iad_score(rare[None], torch.zeros(1, 128), w) > 10 * iad_score(common[None], torch.zeros(1, 128), w)


def test_residual_bank_scores_distance_to_nearest_normal_residual():
    from glance_lite.heads import ResidualBank, iad_score
    torch.manual_seed(6)
    z_l, z_g = torch.randn(5, 128), torch.randn(5, 128)
    bank = ResidualBank()
    assert len(bank) == 0  # empty: plain (whitened) Eq. 11
    assert torch.allclose(iad_score(z_l, z_g, bank=bank), iad_score(z_l, z_g))
    # a bank holding only the zero residual: the root of Eq. 11
    bank.fit(torch.zeros(1, 128))
    assert torch.allclose(iad_score(z_l, z_g, bank=bank), iad_score(z_l, z_g).sqrt(), atol=1e-5)
    # a residual that some normal patch had scores ~0, however large it is
    typical = torch.randn(50, 128) * 3
    bank.fit(typical)
    s = iad_score(typical[:3] + z_g[:3], z_g[:3], bank=bank)
    assert s.max() < 1e-2  # float16 storage
    new = iad_score(z_l, z_g, bank=bank)
    expect = torch.cdist(z_l - z_g, typical).amin(1) / 128 ** 0.5
    assert torch.allclose(new, expect, rtol=1e-2)


def test_residual_bank_saves_and_loads_with_its_size(tmp_path):
    from glance_lite.model import Glance, load_model, save_model
    m = Glance(get_profile("smoke", global_arch="coords"))
    m.bank.fit(torch.randn(37, 128))
    save_model(tmp_path / "g.pt", m, m.config)
    back = load_model(tmp_path / "g.pt")
    assert back.bank.residuals.shape == (37, 128)
    assert torch.equal(back.bank.residuals, m.bank.residuals)


def test_calibrated_dad_subtracts_the_nearest_normal_patchs_s_dad(tmp_path):
    from glance_lite.heads import ResidualBank
    from glance_lite.model import Glance, load_model, save_model
    from glance_lite.scoring import head_scores
    bank = ResidualBank().fit(torch.eye(4, 128) * 5)
    assert not bank.calibrates_dad  # no s_DAD stored: Eq. 12 unchanged
    with pytest.raises(ValueError, match="3 s_DAD values for 4 bank residuals"):
        bank.fit(torch.eye(4, 128), torch.zeros(3))
    bank.fit(torch.eye(4, 128) * 5, torch.tensor([0.1, 0.2, 0.3, 0.9]))
    assert bank.calibrates_dad
    d, idx = bank.search(torch.eye(4, 128)[[3, 0]] * 5 + 0.01)
    assert idx.tolist() == [3, 0] and d.max() < 0.05
    got = bank.calibrate(torch.tensor([0.5, 0.5]), idx)
    assert torch.allclose(got, torch.tensor([0.0, 0.4]), atol=1e-3)  # 0.5 - 0.9 floored at 0; 0.5 - 0.1
    m = Glance(get_profile("smoke", global_arch="centred"))
    z_l, z_g = torch.randn(2, 6, 128), torch.zeros(2, 6, 128)
    plain = head_scores(m.head, z_l, z_g, bank=ResidualBank().fit(torch.randn(10, 128)))[1]
    m.bank.fit(torch.randn(10, 128), torch.rand(10))
    s_iad, s_dad = head_scores(m.head, z_l, z_g, bank=m.bank)
    _, idx = m.bank.search(z_l.flatten(0, 1))
    assert torch.allclose(s_dad.flatten(), (plain.flatten() - m.bank.dad[idx].float()).clamp(min=0), atol=1e-6)
    save_model(tmp_path / "g.pt", m, m.config)
    back = load_model(tmp_path / "g.pt")
    assert back.bank.calibrates_dad and torch.equal(back.bank.dad, m.bank.dad)


def test_calibrate_dad_needs_the_bank():
    from glance_lite.profiles import get_profile
    with pytest.raises(ValueError, match="calibrate_dad=True needs nearest_iad=True"):
        get_profile("cpu", calibrate_dad=True, nearest_iad=False)
    assert get_profile("cpu", calibrate_dad=True).deviations.calibrate_dad


def test_fit_residual_model_fills_whitener_and_bank():
    from glance_lite.context_train import fit_residual_model
    from glance_lite.model import Glance
    from glance_lite.patches import PatchGrid
    torch.manual_seed(7)
    m = Glance(get_profile("smoke", global_arch="coords"))
    images = torch.rand(3, 3, 256, 256)
    grid = PatchGrid(per_side=3)
    fit_residual_model(m, images, grid, whiten=True, bank=True, max_whiten_images=2)
    assert len(m.bank) == 3 * grid.n_patches
    assert not torch.equal(m.whitener.matrix, torch.eye(128))
    m2 = Glance(get_profile("smoke", global_arch="coords"))
    fit_residual_model(m2, images, grid, whiten=False, bank=False)
    assert len(m2.bank) == 0 and torch.equal(m2.whitener.matrix, torch.eye(128))
    assert not m.bank.calibrates_dad
    fit_residual_model(m2, images, grid, whiten=True, bank=True, max_whiten_images=2, dad=True)
    assert m2.bank.calibrates_dad and m2.bank.dad.shape == (3 * grid.n_patches,)
    assert 0 <= m2.bank.dad.min() and m2.bank.dad.max() <= 1  # s_DAD is a probability


def test_centred_window_follows_the_hole():
    """"centred": move the layer-1_2 map and the hole together by whole steps (8 px) and the
    hole-centred window holds the same features wherever both windows lie inside the map, so a
    neighbour at a given offset from the hole meets the same weights of PConv2_1 .. 4."""
    from glance_lite.global_net import centre_on_hole
    torch.manual_seed(3)
    x = torch.rand(1, 4, 28, 28)
    m = torch.ones(1, 1, 28, 28)
    c = torch.tensor([[17.0 + 8 * 12, 17.0 + 8 * 15]])
    moved = torch.roll(x, shifts=(2, -3), dims=(2, 3))  # wrapped rows / cols are checked out below
    a, ma, fa = centre_on_hole(x, m, c)
    b, mb, fb = centre_on_hole(moved, m, c + torch.tensor([[16.0, -24.0]]))
    assert (fb - fa).tolist() == [[2.0, -3.0]]
    inside = (ma * mb).bool()[0, 0]
    inside[:, -4:] = False  # columns that the roll wrapped around
    assert inside.sum() > 300 and torch.equal(a[0][:, inside], b[0][:, inside])


def test_centre_on_hole_puts_the_hole_in_the_middle_and_masks_the_outside():
    from glance_lite.global_net import centre_on_hole
    x = torch.arange(28.0).view(1, 1, 1, 28).expand(2, 1, 28, 28)  # value = column index
    m = torch.ones(1, 1, 28, 28)
    c = torch.tensor([[17.0 + 8 * 20, 17.0 + 8 * 3], [17.0, 17.0 + 8 * 27]])  # locations (20, 3), (0, 27)
    xw, mw, first = centre_on_hole(x, m, c)
    assert first.tolist() == [[6.0, -11.0], [-14.0, 13.0]]
    assert xw[0, 0, 14, 14] == 3 and xw[1, 0, 14, 14] == 27   # the hole's column at the middle
    assert mw[0, 0, :, :11].sum() == 0 and mw[0, 0, :22, 11:].all()  # 11 columns left of the image
    assert mw[0, 0, 22:].sum() == 0                                   # and 6 rows below it
    assert mw[1, 0, :14].sum() == 0 and mw[1, 0, :, 15:].sum() == 0  # above / right of the image


@pytest.mark.parametrize("grey", [False, True])
def test_global_step_passes_the_profiles_context_stain_colour(monkeypatch, grey):
    """Profile.context_stain_grey reaches stains.context_stains through train.global_step, and
    decides whether Global-Net's input gets grey or coloured stains."""
    import glance_lite.context_train as ct
    from glance_lite.training import global_step
    seen = []

    def spy(images, n, g=None, **kw):
        out = ct_stains(images, n, g, **kw)
        seen.append((kw.get("grey"), out - images))
        return out
    ct_stains = ct.context_stains
    monkeypatch.setattr(ct, "context_stains", spy)
    prof = get_profile("smoke", context_stains=4, context_stain_grey=grey, context_shift=0, train_batch=2)
    model = Glance(prof)
    model.local_net.requires_grad_(False)
    imgs = torch.full((2, 3, 256, 256), 0.5)
    imgs[:, 0] = 0.2                                                   # a coloured image
    pos = lattice(stride=32)
    tg = local_targets(model.local_net, imgs, pos)
    model.scaler.fit(tg.float())
    ctx = {"targets": tg, "positions": pos, "shift": 0}
    for s in range(6):                                                 # until some stain is drawn
        global_step(model, imgs, step_generator(0, "t", s), prof, torch.device("cpu"), ctx, s)
    assert seen and all(flag is grey for flag, _ in seen)
    diff = torch.cat([d for _, d in seen])
    painted = diff.abs().amax(1) > 1e-3                               # (B, S, S) stained pixels
    assert painted.any()
    # G and B start equal (0.5): a grey stain keeps them equal, a coloured one pulls them apart
    final = (torch.cat([imgs] * (diff.shape[0] // 2)) + diff).permute(1, 0, 2, 3)[:, painted]
    assert bool((final[1] - final[2]).abs().max() < 1e-5) == grey


def test_paper_sampling_keeps_the_other_deviations(tmp_path):
    """hole_sampling="paper" with the short profile's other deviations: the scaler is fitted and the
    prior started (so Z_l is standardised, in training and scoring), context stains reach Global-Net's
    input; with the PAPER preset the scaler stays the identity."""
    from glance_lite.profiles import PAPER
    import glance_lite.training as tr
    imgs = torch.rand(4, 3, 256, 256)
    calls = []
    real = tr.context_stains
    tr_stains = lambda images, n, g=None, **kw: calls.append(n) or real(images, n, g, **kw)  # noqa: E731
    tr.context_stains = tr_stains
    try:
        short = get_profile("smoke", hole_sampling="paper", train_steps=2)
        run = tr.train(imgs, "toy", tmp_path / "short", profile=short, teacher="random", progress=False)
        paper = get_profile("smoke", deviations=PAPER, train_steps=2)
        run_p = tr.train(imgs, "toy", tmp_path / "paper", profile=paper, teacher="random", progress=False)
    finally:
        tr.context_stains = real
    m, mp = load_model(run), load_model(run_p)
    assert not torch.allclose(m.scaler.std, torch.ones(128)) and m.global_net.prior.abs().sum() > 0
    assert torch.equal(mp.scaler.mean, torch.zeros(128)) and torch.equal(mp.scaler.std, torch.ones(128))
    assert short.deviations.context_stains in calls and 0 in calls
