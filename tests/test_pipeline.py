"""Training, resuming, checkpoints, evaluation and the CLI contract, on the smoke profile."""
import json

import pytest
import torch

from glance_lite import checkpoint
from glance_lite.cli import main
from glance_lite.evaluation import evaluate, load_scores
from glance_lite.model import load_model
from glance_lite.profiles import get_profile, resolve_name
from glance_lite.training import RunError, TrainingDiverged, train


class Interrupt(Exception):
    pass


def _weights(path):
    return load_model(path).state_dict()


@pytest.fixture(scope="module")
def trained(synth_root, category, tmp_path_factory):
    run = tmp_path_factory.mktemp("run") / "r"
    return train(synth_root, category, run, profile="smoke", teacher="random", seed=1, progress=False)


def test_train_writes_the_run_folder(trained):
    run = trained
    for f in ("config.json", "log.jsonl", "checkpoint.pt", "local.pt", "glance.pt"):
        assert (run / f).exists(), f
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    prof = get_profile("smoke")
    assert [x["phase"] for x in lines].count("train") == prof.train_steps
    assert {"l_iad", "l_dad", "loss"} <= set(lines[-1])
    ck = checkpoint.load(trained / "glance.pt")
    assert ck["package_version"] and ck["config"]["teacher"] == "random"


@pytest.mark.parametrize("phase,at", [("distill", 2), ("finetune", 3), ("train", 3)])
def test_interrupted_then_resumed_equals_uninterrupted(synth_root, category, trained, tmp_path, phase, at):
    run = tmp_path / "r"

    def stop(ph, step):
        if (ph, step) == (phase, at):
            raise Interrupt

    with pytest.raises(Interrupt):
        train(synth_root, category, run, profile="smoke", teacher="random", seed=1, progress=False, on_step=stop)
    assert not (run / "glance.pt").exists()
    with pytest.raises(RunError, match="--resume"):
        train(synth_root, category, run, profile="smoke", teacher="random", seed=1, progress=False)
    path = train(synth_root, category, run, profile="smoke", teacher="random", seed=1, progress=False, resume=True)
    a, b = _weights(path), _weights(trained)
    assert all(torch.equal(a[k], b[k]) for k in a)
    log = (run / "log.jsonl").read_text().splitlines()
    assert log == (trained / "log.jsonl").read_text().splitlines()


def test_different_seed_gives_different_weights(synth_root, category, trained, tmp_path):
    other = train(synth_root, category, tmp_path / "r", profile="smoke", teacher="random", seed=2, progress=False)
    a, b = _weights(other), _weights(trained)
    assert not all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_a_different_config(synth_root, category, trained, tmp_path):
    run = tmp_path / "r"

    def stop(ph, step):
        raise Interrupt

    with pytest.raises(Interrupt):
        train(synth_root, category, run, profile="smoke", teacher="random", seed=1, progress=False, on_step=stop)
    with pytest.raises(RunError, match=r"seed 1 \(this call: 5\); pass --overwrite"):
        train(synth_root, category, run, profile="smoke", teacher="random", seed=5, progress=False, resume=True)
    with pytest.raises(RunError, match=r"profile 'smoke' \(this call: 'cpu'\)"):
        train(synth_root, category, run, profile="cpu", teacher="random", seed=1, progress=False, resume=True)


def test_demo_keeps_runs_of_different_profiles_apart(synth_root, category, tmp_path, monkeypatch):
    """`demo` without --out writes runs/demo-PROFILE, so a later demo in another profile does
    not trip over (or resume) the first one's runs."""
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--profile", "smoke", "--category", category, "--data", str(synth_root)]) == 0
    assert (tmp_path / "runs" / "demo-smoke" / category / "eval" / "metrics.json").is_file()
    assert (tmp_path / "runs" / "demo-smoke" / "summary.json").is_file()


def test_checkpoint_write_failure_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    checkpoint.save(path, {"config": {}, "phase": "train", "step": 1, "models": {"w": {"x": torch.ones(3)}}, "optim": None})

    def broken_save(obj, f, *a, **k):
        f.write(b"PARTIAL")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        checkpoint.save(path, {"config": {}, "phase": "train", "step": 2, "models": {}, "optim": None})
    monkeypatch.undo()
    assert checkpoint.load(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temp file left behind


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_checkpoint_with_pickled_object_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "arch": checkpoint.ARCH, "payload": Evil()}, path)
    with pytest.raises(checkpoint.CheckpointError, match="refusing"):
        checkpoint.load(path)


def test_checkpoint_newer_format_other_arch_and_garbage(tmp_path):
    good = {"config": {}, "phase": "done", "step": 0, "models": {}, "optim": None}
    checkpoint.save(tmp_path / "a.pt", good)
    ck = checkpoint.load(tmp_path / "a.pt")
    torch.save({**ck, "format": 99}, tmp_path / "new.pt")
    with pytest.raises(checkpoint.CheckpointError, match="newer"):
        checkpoint.load(tmp_path / "new.pt")
    torch.save({**ck, "arch": "resnet50"}, tmp_path / "arch.pt")
    with pytest.raises(checkpoint.CheckpointError, match="architecture"):
        checkpoint.load(tmp_path / "arch.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00not a checkpoint")
    with pytest.raises(checkpoint.CheckpointError, match="junk.pt"):
        checkpoint.load(tmp_path / "junk.pt")


def test_checkpoint_with_wrong_shapes_is_refused(trained, tmp_path):
    ck = checkpoint.load(trained / "glance.pt")
    ck["models"]["glance"]["local_net.conv1.weight"] = torch.zeros(3, 3, 3, 3)
    torch.save(ck, tmp_path / "bad.pt")
    with pytest.raises(checkpoint.CheckpointError, match="do not fit"):
        load_model(tmp_path / "bad.pt")


def test_nan_loss_stops_training_and_keeps_last_checkpoint(synth_root, category, tmp_path, monkeypatch):
    import glance_lite.training as tr
    real = tr.global_step
    calls = {"n": 0}

    def poisoned(*a, **k):
        calls["n"] += 1
        loss, parts = real(*a, **k)
        return (loss * float("nan"), parts) if calls["n"] == 3 else (loss, parts)

    monkeypatch.setattr(tr, "global_step", poisoned)
    with pytest.raises(TrainingDiverged, match="step 2"):
        train(synth_root, category, tmp_path / "r", profile="smoke", teacher="random", seed=1, progress=False)
    ck = checkpoint.load(tmp_path / "r" / "checkpoint.pt")
    assert ck["phase"] == "train" and ck["step"] == 2
    assert all(torch.isfinite(v).all() for v in ck["models"]["glance"].values() if v.is_floating_point())


def test_evaluate_writes_metrics_and_rescorable_scores(trained, synth_root, category, tmp_path):
    m = evaluate(trained, synth_root, category, out_dir=tmp_path / "ev")
    saved = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    for key in ("pro", "pixel_auroc", "image_auroc", "per_defect"):
        assert key in saved
    assert 0.0 <= saved["pro"] <= 1.0 and saved["per_defect"]
    scores, meta = load_scores(tmp_path / "ev")
    assert scores.s_iad.shape[0] == len(meta["labels"]) == m["n_images"]
    assert scores.grid.align == saved["grid_align"] == 2  # the grid the scores were computed on
    # re-scoring from the stored s_IAD / s_DAD reproduces the stored metrics
    from glance_lite.evaluation import metrics_for
    from glance_lite.data import load_mvtec
    again = metrics_for(scores, load_mvtec(synth_root, category, "test"), saved["lambda_s"], 5.0)
    assert again["pro"] == pytest.approx(saved["pro"], abs=1e-6)
    assert (tmp_path / "ev" / "figure.png").stat().st_size > 1000


def test_profiles_resolve(monkeypatch):
    monkeypatch.setenv("GLANCE_PROFILE", "paper")
    assert resolve_name() == "paper" and get_profile().train_steps == 200_000
    monkeypatch.setenv("GLANCE_PROFILE", "auto")
    assert resolve_name() == ("colab" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown profile"):
        resolve_name("fast")


def test_cli_contract(synth_root, category, tmp_path, capsys):
    run, ev = tmp_path / "run", tmp_path / "ev"
    assert main(["train", "--data", str(synth_root), "--category", category, "--profile", "smoke",
                 "--out", str(run)]) == 0
    assert "UNTRAINED" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(run), "--data", str(synth_root), "--category", category,
                 "--out", str(ev)]) == 0
    assert {"pro", "pixel_auroc", "image_auroc", "per_defect"} <= set(json.loads((ev / "metrics.json").read_text()))
    # errors: one line, non-zero exit, naming the problem
    assert main(["train", "--data", str(synth_root), "--category", "nope", "--profile", "smoke",
                 "--out", str(tmp_path / "r2")]) == 1
    assert "nope" in capsys.readouterr().err
    assert main(["train", "--data", str(synth_root), "--category", category, "--profile", "cpu",
                 "--teacher", "imagenet", "--out", str(tmp_path / "r3")]) == 1
    err = capsys.readouterr().err
    assert "resnet18" in err and "--teacher random" in err
    assert not (tmp_path / "r3" / "log.jsonl").exists()  # failed before any training


def test_cli_help_for_every_subcommand(capsys):
    for sub in ("synth", "train", "evaluate", "demo", "compare"):
        with pytest.raises(SystemExit) as e:
            main([sub, "--help"])
        assert e.value.code == 0
        assert "usage: glance-lite " + sub in capsys.readouterr().out


def test_overwrite_retrains_even_with_an_old_local_net(synth_root, category, trained, tmp_path):
    import shutil
    run = tmp_path / "r"
    shutil.copytree(trained, run)
    path = train(synth_root, category, run, profile="smoke", teacher="random", seed=1, progress=False, overwrite=True)
    assert (run / "local.pt").exists() and (path / "glance.pt").exists()


def test_evaluate_uses_the_runs_own_profile_overrides(synth_root, category, tmp_path):
    """A run trained with overrides (grid, lambda_s, paper architecture) is evaluated with them."""
    prof = get_profile("smoke", grid_per_side=4, lambda_s=0.5, global_arch="paper", train_steps=2)
    run = train(synth_root, category, tmp_path / "r", profile=prof, teacher="random", seed=2, progress=False)
    m = evaluate(run, synth_root, category, out_dir=tmp_path / "ev", figure=False)
    assert m["grid_per_side"] == 4 and m["lambda_s"] == 0.5 and m["global_arch"] == "paper"
    assert load_model(run).global_net.arch == "paper"
    m = evaluate(run, synth_root, category, out_dir=tmp_path / "ev2", lambda_s=0.9, figure=False)
    assert m["lambda_s"] == 0.9  # an explicit argument overrides, and is recorded


def test_evaluate_reports_the_context_diagnostic(trained, synth_root, category, tmp_path):
    m = evaluate(trained, synth_root, category, out_dir=tmp_path / "ev", figure=False)
    assert set(m["context"]) == {"r2_global", "r2_position_mean", "r2_constant", "dad_auroc_stains"}
    assert 0.0 <= m["context"]["dad_auroc_stains"] <= 1.0
    assert m["amp"] == "float32"


def test_figure_shows_every_defect_type_first():
    from glance_lite.evaluation import figure_picks
    defects = ["good", "burn", "burn", "burn", "swap", "swap", "missing", "good"]
    labels = [0, 1, 1, 1, 1, 1, 1, 0]
    assert figure_picks(defects, labels, n=4) == [1, 4, 6, 2]
    assert figure_picks(defects, labels) == [1, 4, 6, 2, 5, 3]
    assert figure_picks(["good"], [0]) == []
