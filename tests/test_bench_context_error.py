"""benchmarks/context_error.py: the noise ceiling of R^2 and fabric's error by distance to a dot."""
import numpy as np
import torch

from glance_lite.train import train


def test_render_pair_differs_only_by_pixel_noise(load_benchmark):
    from glance_lite.data import synthetic as S
    mod = load_benchmark("context_error")
    a, b, p = mod.render_pair("fabric", np.random.default_rng(0), S.Canvas(256))
    assert a.shape == b.shape == (256, 256, 3) and "ink" in p
    d = a - b
    assert 0.01 < d.std() < 0.05 and abs(d.mean()) < 0.005  # sqrt(2) * 0.02 noise, same layout


def test_context_error_prints_ceiling_and_distance_bands(synth_root, tmp_path, capsys, load_benchmark):
    run = tmp_path / "r"
    train(run, synth_root, "fabric", "smoke", "random", seed=0, progress=False)
    assert load_benchmark("context_error").main([str(run), "--category", "fabric", "--images", "2"]) == 0
    assert torch.is_grad_enabled()  # main() must not switch gradients off for the rest of the process
    out = capsys.readouterr().out
    ceiling = float(out.split("R^2 noise ceiling ")[1].split(";")[0])
    assert 0.5 < ceiling <= 1.0
    bands = [r for r in out.splitlines() if " px | " in r]
    cols = [r.split("|") for r in bands]
    assert bands and abs(sum(float(c[3]) for c in cols) - 1.0) < 0.05  # shares of the error sum to 1
    assert all(0.0 <= float(c[5]) <= 1.0 for c in cols)  # mean s_DAD is a probability
    follow = out.split("patches near a dot): ")[1].splitlines()[0]
    assert [x.rsplit(" ", 1)[0] for x in follow.split(", ")] == ["ink", "lattice +24 px", "lattice +4 px"]
    assert all(float(x.rsplit(" ", 1)[1]) <= 1.0 for x in follow.split(", "))
    sizes = out.split("there: ")[1].splitlines()[0].split(", ")
    assert [x.split(" ")[0] for x in sizes] == ["ink", "lattice", "lattice"] and all(" vs " in x for x in sizes)
    probes = out.split("chance 0.33): ")[1].splitlines()[0].split(", ")
    assert [x.rsplit(" ", 1)[0] for x in probes] == ["Z_l", "Z_g", "layer 1_2"]
    assert all(0.0 <= float(x.rsplit(" ", 1)[1]) <= 1.0 for x in probes)


def test_probe_reads_a_label_that_is_in_the_features_and_not_one_that_is_not(load_benchmark):
    mod = load_benchmark("context_error")
    rng = np.random.default_rng(0)
    y, groups = np.tile([0, 1, 2], 40), np.repeat(np.arange(8), 15)
    informative = np.eye(3)[y] + 0.1 * rng.normal(size=(120, 3))
    assert mod.probe(informative, y, groups) > 0.95
    assert mod.probe(rng.normal(size=(120, 3)), y, groups) < 0.6


def test_follows_is_one_for_a_copy_of_local_net_and_zero_for_a_constant(monkeypatch, load_benchmark):
    import torch
    from glance_lite.data import synthetic as S
    from glance_lite.patches import PatchGrid
    mod = load_benchmark("context_error")
    grid, cv = PatchGrid(per_side=4), S.Canvas(256)
    layouts = [S._fabric_sample(np.random.default_rng(i)) for i in range(2)]

    class Model:  # Z_l: each patch's mean colour; Z_g: the same (follows) or zero (ignores)
        local_net = global_net = None
        scaler = staticmethod(lambda z: z)

    for copy, want in [(True, 1.0), (False, 0.0)]:
        def fake(local_net, global_net, images, grid_, copy=copy):
            zl = torch.stack([images[:, :, r:r + grid_.patch_size, c:c + grid_.patch_size].mean(dim=(2, 3))
                              for r, c in grid_.top_left.tolist()], dim=1)  # (N, K*K, 3)
            return zl, (zl if copy else torch.zeros_like(zl))
        monkeypatch.setattr(mod, "patch_features", fake)
        share, change, err = mod.follows(Model(), layouts, mod.CHANGES["lattice +24 px"], grid, cv)
        assert abs(share - want) < 1e-6 and change > 0
        assert err == 0 if copy else err > 0  # a copy of Local-Net has no error; zero has
