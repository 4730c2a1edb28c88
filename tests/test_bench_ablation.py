"""benchmarks/ablation.py: one deviation at a time on an existing run (retrain / rescore)."""
import json

import pytest
import torch

from glance_lite.evaluation import evaluate
from glance_lite.model import load_model
from glance_lite.training import train


@pytest.fixture(scope="module")
def smoke_run(synth_root, tmp_path_factory):
    return train(synth_root, "fabric", tmp_path_factory.mktemp("ablation") / "r", profile="smoke",
                 teacher="random", seed=3, progress=False)


def _main(load_benchmark, *args) -> int:
    return load_benchmark("ablation").main([str(a) for a in args])


def test_retrain_with_the_same_seed_repeats_the_source_run(smoke_run, synth_root, tmp_path, capsys, load_benchmark):
    assert _main(load_benchmark, "retrain", smoke_run, tmp_path / "dst", "--data", synth_root, "--category",
                 "fabric", "--profile", "smoke", "--seed", 3, "--set", "hard_holes_gamma=0.5") == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 <= row["pro"] <= 1.0 and "r2_global" in row
    a, b = (load_model(run).state_dict() for run in (smoke_run, tmp_path / "dst"))
    assert a.keys() == b.keys()
    for k in (k for k in a if k.startswith("global_net.")):  # the same Global-Net as the source run's
        assert torch.allclose(a[k], b[k], atol=1e-5), k


def test_retrain_refuses_a_source_without_local_net_and_a_folder_that_is_not_a_run(smoke_run, synth_root,
                                                                                  tmp_path, load_benchmark):
    with pytest.raises(SystemExit, match="local.pt not found"):
        _main(load_benchmark, "retrain", tmp_path, tmp_path / "dst", "--data", tmp_path, "--category", "fabric")
    keep = tmp_path / "notes"
    keep.mkdir()
    (keep / "draft.txt").write_text("mine")
    with pytest.raises(SystemExit, match="not a run folder"):
        _main(load_benchmark, "retrain", smoke_run, keep, "--data", synth_root, "--category", "fabric")
    assert (keep / "draft.txt").read_text() == "mine"


def test_rescore_without_changes_repeats_the_run(smoke_run, synth_root, tmp_path, capsys, load_benchmark):
    pro = evaluate(smoke_run, synth_root, "fabric", out_dir=tmp_path / "ev", figure=False)["pro"]
    assert _main(load_benchmark, "rescore", smoke_run, tmp_path / "d", "--data", synth_root,
                 "--category", "fabric") == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert abs(out["pro"] - pro) < 1e-3  # same networks, same bank fitted again
    assert torch.is_grad_enabled()


def test_rescore_switches_the_calibrated_dad_off_and_on(smoke_run, synth_root, tmp_path, load_benchmark):
    """The short profiles calibrate s_DAD (Deviations.calibrate_dad); --set turns it off and on again."""
    assert load_model(smoke_run).bank.calibrates_dad  # the default
    off, on = tmp_path / "off", tmp_path / "on"
    assert _main(load_benchmark, "rescore", smoke_run, off, "--data", synth_root, "--category", "fabric",
                 "--set", "calibrate_dad=False") == 0
    model = load_model(off)
    assert not model.bank.calibrates_dad and model.profile.deviations.calibrate_dad is False
    assert load_model(smoke_run).bank.calibrates_dad  # the source is untouched
    assert _main(load_benchmark, "rescore", off, on, "--data", synth_root, "--category", "fabric",
                 "--set", "calibrate_dad=True") == 0
    assert load_model(on).bank.calibrates_dad and (on / "eval" / "metrics.json").is_file()


@pytest.mark.parametrize("item, message", [("train_steps=10", "train_steps: not a scoring field"),
                                           ("calibrate_dad=True nearest_iad=False", "needs nearest_iad=True"),
                                           ("train_step=3", "FIELD one of"),
                                           ("lr_global=fast", "not a Python literal")])
def test_rescore_refuses_bad_overrides(smoke_run, synth_root, tmp_path, item, message, load_benchmark):
    with pytest.raises(SystemExit, match=message):
        _main(load_benchmark, "rescore", smoke_run, tmp_path / "d", "--data", synth_root, "--category", "fabric",
              "--set", *item.split())


def test_accuracy_set_refuses_a_bad_override_before_any_work(load_benchmark, tmp_path):
    for bad, msg in [("mismatch_negative=1", "FIELD one of"), ("train_steps=many", "not a Python literal"),
                     ("mismatch_negatives=2", "must be a number in")]:
        with pytest.raises(SystemExit, match=msg):
            load_benchmark("accuracy").main(["--set", bad, "--out", str(tmp_path / "runs")])
    assert not (tmp_path / "runs").exists()
