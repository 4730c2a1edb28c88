"""benchmarks/rescore.py: re-fit a finished run's scoring options and evaluate, no training."""
import json

import pytest
import torch

from glance_lite.evaluate import evaluate
from glance_lite.model import load_model
from glance_lite.train import train


@pytest.fixture(scope="module")
def smoke_run(synth_root, tmp_path_factory):
    run = tmp_path_factory.mktemp("rescore") / "r"
    train(run, synth_root, "fabric", "smoke", "random", seed=0, progress=False)
    return run


def test_rescore_without_changes_repeats_the_run(smoke_run, synth_root, tmp_path, capsys, load_benchmark):
    pro = evaluate(smoke_run, synth_root, "fabric", tmp_path / "ev", figure=False)["pro"]
    assert load_benchmark("rescore").main([str(smoke_run), str(tmp_path / "d"), "--data", str(synth_root),
                                           "--category", "fabric"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert abs(out["pro"] - pro) < 1e-3  # same networks, same bank fitted again
    assert torch.is_grad_enabled()


def test_rescore_switches_the_calibrated_dad_off_and_on(smoke_run, synth_root, tmp_path, load_benchmark):
    """The short profiles calibrate s_DAD (Profile.calibrate_dad); --set turns it off and on again."""
    assert load_model(smoke_run / "glance.pt")[0].bank.calibrates_dad  # the default
    off, on = tmp_path / "off", tmp_path / "on"
    assert load_benchmark("rescore").main([str(smoke_run), str(off), "--data", str(synth_root),
                                           "--category", "fabric", "--set", "calibrate_dad=False"]) == 0
    model, config = load_model(off / "glance.pt")
    assert not model.bank.calibrates_dad and config["profile"]["calibrate_dad"] is False
    assert load_model(smoke_run / "glance.pt")[0].bank.calibrates_dad  # the source is untouched
    assert load_benchmark("rescore").main([str(off), str(on), "--data", str(synth_root),
                                           "--category", "fabric", "--set", "calibrate_dad=True"]) == 0
    model, config = load_model(on / "glance.pt")
    assert model.bank.calibrates_dad and config["profile"]["calibrate_dad"] is True
    assert (on / "eval" / "metrics.json").is_file()


@pytest.mark.parametrize("item, message", [("train_steps=10", "train_steps: not a scoring field"),
                                           ("calibrate_dad=True nearest_iad=False", "needs nearest_iad=True")])
def test_rescore_refuses_training_fields_and_bad_combinations(smoke_run, synth_root, tmp_path, item, message,
                                                              load_benchmark):
    with pytest.raises(SystemExit, match=message):
        load_benchmark("rescore").main([str(smoke_run), str(tmp_path / "d"), "--data", str(synth_root),
                                        "--category", "fabric", "--set", *item.split()])
