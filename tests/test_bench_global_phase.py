"""benchmarks/global_phase.py: retrain the Global-Net phase on a run's Local-Net; the weighted Eq. 7."""
import json

import pytest
import torch

from glance_lite import context_train
from glance_lite.train import train


def test_weighted_iad_is_the_plain_mean_at_gamma_zero_and_favours_hard_holes(load_benchmark):
    mod = load_benchmark("global_phase")
    g = torch.Generator().manual_seed(0)
    z_l, z_g = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    z_g[0] += 5.0  # one hard hole
    logits, real = torch.zeros(2, 2), torch.tensor([True, False])
    plain, _ = context_train.joint_loss(z_l, z_g, logits, real, 0.0)
    flat, log0 = mod.weighted_joint_loss(0.0)(z_l, z_g, logits, real, 0.0)
    hard, log1 = mod.weighted_joint_loss(1.0)(z_l, z_g, logits, real, 0.0)
    assert flat.item() == pytest.approx(plain.item(), rel=1e-6)
    assert hard.item() > plain.item()  # the hard hole weighs more than 1/6
    assert log1["l_iad"] == pytest.approx(log0["l_iad"])  # the log keeps the plain mean
    early = mod.weighted_joint_loss(1.0, until=2)  # weighted for two steps, then the plain mean
    got = [early(z_l, z_g, logits, real, 0.0)[0].item() for _ in range(3)]
    assert got[:2] == pytest.approx([hard.item()] * 2) and got[2] == pytest.approx(plain.item(), rel=1e-6)


def test_same_seed_repeats_the_source_run_and_the_loss_is_restored(synth_root, category, tmp_path, capsys, load_benchmark):
    src = tmp_path / "src"
    train(src, synth_root, category, "smoke", "random", seed=3, progress=False)
    mod = load_benchmark("global_phase")
    assert mod.main([str(src), str(tmp_path / "dst"), "--data", str(synth_root), "--category", category,
                     "--profile", "smoke", "--seed", "3", "--weighted-iad", "0"]) == 0
    assert context_train.joint_loss is not None and context_train.joint_loss.__module__ == "glance_lite.losses"
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 <= row["pro"] <= 1.0 and "r2_global" in row
    a, b = (torch.load(run / "glance.pt", weights_only=False)["models"]["glance"] for run in (src, tmp_path / "dst"))
    assert a.keys() == b.keys() and any(k.startswith("global_net.") for k in a)
    for k in (k for k in a if k.startswith("global_net.")):  # gamma 0 is Eq. 7 itself: the same Global-Net as the source run's
        assert torch.allclose(a[k], b[k], atol=1e-5), k


def test_refuses_a_source_without_local_net(tmp_path, load_benchmark):
    with pytest.raises(SystemExit, match="local.pt not found"):
        load_benchmark("global_phase").main([str(tmp_path), str(tmp_path / "dst"), "--data", str(tmp_path), "--category", "fabric"])


def test_refuses_to_empty_a_folder_that_is_not_a_run(synth_root, category, tmp_path, load_benchmark):
    src = tmp_path / "src"
    train(src, synth_root, category, "smoke", "random", seed=0, progress=False, until="finetune")
    keep = tmp_path / "notes"
    keep.mkdir()
    (keep / "draft.txt").write_text("mine")
    with pytest.raises(SystemExit, match="not a run folder"):
        load_benchmark("global_phase").main([str(src), str(keep), "--data", str(synth_root), "--category", category])
    assert (keep / "draft.txt").read_text() == "mine"


def test_overrides_parse_literals_and_refuse_unknown_fields(load_benchmark):
    mod = load_benchmark("global_phase")
    assert mod.overrides(["train_steps=3000", "lr_global=2e-3"]) == {"train_steps": 3000, "lr_global": 0.002}
    for bad, msg in [("train_step=3", "FIELD one of"), ("train_steps", "FIELD one of"), ("lr_global=fast", "not a Python literal")]:
        with pytest.raises(SystemExit, match=msg):
            mod.overrides([bad])


def test_accuracy_set_refuses_a_bad_override_before_any_work(load_benchmark, tmp_path):
    for bad, msg in [("mismatch_negative=1", "FIELD one of"), ("train_steps=many", "not a Python literal")]:
        with pytest.raises(SystemExit, match=msg):
            load_benchmark("accuracy").main(["--set", bad, "--out", str(tmp_path / "runs")])
    assert not (tmp_path / "runs").exists()
