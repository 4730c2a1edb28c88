"""Early stopping of the Global-Net phase on held-back training images (early_stop.py)."""
import json

import pytest
import torch

from glance_lite import training
from glance_lite.early_stop import HoldoutCheck, holdout_split
from glance_lite.model import Glance, load_model
from glance_lite.profiles import get_profile
from glance_lite.training import train


class Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def images():
    return torch.rand(16, 3, 256, 256, generator=torch.Generator().manual_seed(0))


def _profile(min_delta):
    return get_profile("smoke", train_steps=12, stop_check_every=2, stop_patience=1, stop_min_delta=min_delta,
                       stop_holdout=2, lattice_stride=4)


def _train(images, run, min_delta=0.5, **kw):
    return train(images, "rand", run, profile=_profile(min_delta), teacher="random", seed=0, progress=False, **kw)


def _train_lines(run):
    return [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines() if '"train"' in x]


def test_holdout_split_spreads_the_held_images_and_spares_small_sets():
    keep, held = holdout_split(60, 4)
    assert held.tolist() == [12, 24, 35, 47] and len(keep) == 56
    assert not set(keep.tolist()) & set(held.tolist())
    keep, held = holdout_split(7, 2)  # fewer than 4 x 2 images: none held back
    assert len(held) == 0 and keep.tolist() == list(range(7))


@pytest.fixture(scope="module")
def stopped(images, tmp_path_factory):
    return _train(images, tmp_path_factory.mktemp("es") / "r")


def test_training_stops_when_the_held_back_r2_stops_rising(stopped, images, tmp_path):
    # min_delta 0.5: no check beats the first (step 2) by that; the smoke profile weights hard
    # holes for half of its 12 steps, so the patience (1 check of 2 steps) counts from step 6
    config = json.loads((stopped / "config.json").read_text())["early_stop"]
    assert config["stopped"] and config["steps"] == 8 and config["held_back"] == [5, 10]
    assert [c[0] for c in config["checks"]] == [2, 4, 6, 8]
    lines = _train_lines(stopped)
    assert len(lines) == 8 and "r2_holdout" in lines[1] and "r2_holdout" not in lines[0]
    assert (stopped / "glance.pt").exists()
    # a rule that always sees a rise never stops: the ceiling train_steps ends the phase
    never = _train(images, tmp_path / "never", min_delta=-1.0)
    assert len(_train_lines(never)) == 12
    record = json.loads((never / "config.json").read_text())["early_stop"]
    assert not record["stopped"] and record["steps"] == 12


def test_the_rule_waits_for_its_start_and_counts_from_the_best_check(images):
    check = HoldoutCheck(Glance(get_profile("smoke")), images[:1], every=100, patience=2, min_delta=0.01,
                         device=torch.device("cpu"), start=500)
    for step, value in [(100, 0.5), (200, 0.5), (300, 0.5), (400, 0.5), (500, 0.6), (600, 0.605)]:
        check.update(step, value)
        assert check.stopped is None, step  # before start + 2 checks, and 0.6 was a rise
    check.update(700, 0.609)  # 0.605 and 0.609 do not beat 0.6 by 0.01
    assert check.stopped == 700 and check.end(1500) == 700


def test_held_back_images_are_never_trained_on(images, tmp_path, monkeypatch):
    seen = []
    for name in ("global_step", "prepare_context"):
        real = getattr(training, name)
        monkeypatch.setattr(training, name, lambda model, imgs, *a, _real=real, **k: seen.append(imgs) or _real(model, imgs, *a, **k))
    _train(images, tmp_path / "r")
    assert seen and all(len(s) == 14 for s in seen)
    held = images[[5, 10]]
    assert not any((s[:, None] == held[None]).flatten(2).all(2).any() for s in seen)


@pytest.mark.parametrize("at", [5, 8])  # between two checks; right after the stopping check
def test_interrupted_early_stopped_run_resumes_to_the_same_end(stopped, images, tmp_path, at):
    run = tmp_path / "r"

    def interrupt(phase, step):
        if (phase, step) == ("train", at):
            raise Interrupt

    with pytest.raises(Interrupt):
        _train(images, run, on_step=interrupt)
    _train(images, run, resume=True)
    a, b = load_model(run).state_dict(), load_model(stopped).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _train_lines(run) == _train_lines(stopped)
