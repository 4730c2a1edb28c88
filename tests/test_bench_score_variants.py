"""benchmarks/score_variants.py: Eq. 11 / 13 variants re-scored on a finished run's features."""
import pytest
import torch

from glance_lite.evaluate import evaluate
from glance_lite.train import train


def test_bank_variant_is_what_evaluate_reports(synth_root, tmp_path, capsys, load_benchmark):
    run = tmp_path / "r"
    train(run, synth_root, "fabric", "smoke", "random", seed=0, progress=False)
    pro = evaluate(run, synth_root, "fabric", tmp_path / "ev", figure=False)["pro"]
    assert load_benchmark("score_variants").main([str(run), "--data", str(synth_root), "--category", "fabric"]) == 0
    assert torch.is_grad_enabled()  # main() must not switch gradients off for the rest of the process
    rows = {r.split("|")[1].strip(): r.split("|")[2:-1] for r in capsys.readouterr().out.splitlines()
            if r.startswith("| ") and "variant" not in r}
    assert {"bank", "bank + local", "joint bank", "local only", "spread-normalised Eq. 13",
            "bank, s_DAD above its nearest normal"} <= rows.keys()
    assert abs(float(rows["bank"][1]) - pro) < 2e-3  # the run's own score (maps.npz rounding aside)
    assert all(0.0 <= float(c) <= 1.0 for r in rows.values() for c in r[1:])


def test_leave_one_out_ignores_the_image_itself(load_benchmark):
    mod = load_benchmark("score_variants")
    r = torch.zeros(3, 2, 4)
    r[1] += 2.0  # image 1 is 2 away (per dim) from the others; the others coincide
    d = mod.leave_one_out(r)
    assert d.shape == (3, 2)
    assert torch.allclose(d[0], torch.zeros(2)) and torch.allclose(d[1], torch.full((2,), 2.0))


def test_refuses_a_folder_without_model(tmp_path, load_benchmark):
    with pytest.raises(SystemExit, match="glance.pt not found"):
        load_benchmark("score_variants").main([str(tmp_path), "--data", str(tmp_path), "--category", "fabric"])


def test_nearest_index_matches_cdist_argmin(load_benchmark):
    mod = load_benchmark("score_variants")
    g = torch.Generator().manual_seed(0)
    q, bank = torch.randn(50, 8, generator=g), torch.randn(30, 8, generator=g)
    assert torch.equal(mod.nearest_index(q, bank), torch.cdist(q, bank).argmin(1))
