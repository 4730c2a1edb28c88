"""benchmarks/global_phase.py: retrain the Global-Net phase on a run's Local-Net."""
import json

import pytest
import torch

from glance_lite.train import train


def test_same_seed_repeats_the_source_run(synth_root, category, tmp_path, capsys, load_benchmark):
    src = tmp_path / "src"
    train(src, synth_root, category, "smoke", "random", seed=3, progress=False)
    mod = load_benchmark("global_phase")
    assert mod.main([str(src), str(tmp_path / "dst"), "--data", str(synth_root), "--category", category,
                     "--profile", "smoke", "--seed", "3", "--set", "hard_holes_gamma=0.5"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 <= row["pro"] <= 1.0 and "r2_global" in row
    a, b = (torch.load(run / "glance.pt", weights_only=False)["models"]["glance"] for run in (src, tmp_path / "dst"))
    assert a.keys() == b.keys() and any(k.startswith("global_net.") for k in a)
    for k in (k for k in a if k.startswith("global_net.")):  # the same Global-Net as the source run's
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
    for bad, msg in [("mismatch_negative=1", "FIELD one of"), ("train_steps=many", "not a Python literal"),
                     ("mismatch_negatives=2", "must be a number in")]:
        with pytest.raises(SystemExit, match=msg):
            load_benchmark("accuracy").main(["--set", bad, "--out", str(tmp_path / "runs")])
    assert not (tmp_path / "runs").exists()
