"""Reliability: real kills (also mid-checkpoint-write), determinism, nothing written outside the
run / output folders, defined metrics for degenerate maps."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from glance_lite import checkpoint
from glance_lite.cli import main
from glance_lite.metrics import au_pro, evaluate_maps
from glance_lite.model import load_model
from glance_lite.profiles import get_profile
from glance_lite.training import train

# a smoke profile with enough steps to be killed in the middle of the Global-Net phase
PROFILE = dict(train_steps=30, checkpoint_every=5)

SCRIPT = textwrap.dedent("""
    import sys, os, warnings
    warnings.simplefilter("ignore")
    from glance_lite.profiles import get_profile
    from glance_lite.training import train
    import glance_lite.checkpoint as ck
    run, data, cat, kill_in_save = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    if kill_in_save:
        real_save, calls = ck.torch.save, {"n": 0}
        def dying_save(obj, f, *a, **k):
            calls["n"] += 1
            if calls["n"] == kill_in_save:      # half-written temp file, then a hard kill
                f.write(b"PARTIAL CHECKPOINT BYTES"); f.flush()
                os.kill(os.getpid(), 9)
            return real_save(obj, f, *a, **k)
        ck.torch.save = dying_save
    train(data, cat, run, profile=get_profile("smoke", train_steps=30, checkpoint_every=5), teacher="random",
          seed=3, progress=False, resume=True)
""")


@pytest.fixture(scope="module")
def reference(synth_root, category, tmp_path_factory):
    run = tmp_path_factory.mktemp("ref") / "run"
    return load_model(train(synth_root, category, run, profile=get_profile("smoke", **PROFILE), teacher="random",
                            seed=3, progress=False)).state_dict()


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def _spawn(run, synth_root, category, kill_in_save=0):
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(run), str(synth_root), category, str(kill_in_save)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_sigkill_mid_training_then_resume_equals_uninterrupted(synth_root, category, reference, tmp_path):
    run = tmp_path / "run"
    proc = _spawn(run, synth_root, category)
    log = run / "log.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and sum('"train"' in ln for ln in log.read_text().splitlines()) >= 12:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"training finished or died before the kill: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "glance.pt").exists()
    ck = checkpoint.load(run / "checkpoint.pt")
    assert ck["phase"] == "train" and ck["step"] % 5 == 0 and ck["step"] >= 10
    path = train(synth_root, category, run, profile=get_profile("smoke", **PROFILE), teacher="random", seed=3,
                 progress=False, resume=True)
    assert _same(load_model(path).state_dict(), reference)


def test_local_net_only_then_the_rest_equals_one_call(synth_root, category, reference, tmp_path):
    """train(until="finetune") (the book's chapter 2) writes local.pt with Local-Net and its
    decoder, and no glance.pt; a later train() continues and ends with the reference weights."""
    from glance_lite.model import load_local
    run = tmp_path / "run"
    local = train(synth_root, category, run, profile=get_profile("smoke", **PROFILE), teacher="random", seed=3,
                  progress=False, until="finetune")
    assert local == run and (run / "local.pt").exists() and not (run / "glance.pt").exists()
    logged = [json.loads(ln)["phase"] for ln in (run / "log.jsonl").read_text().splitlines()]
    assert set(logged) == {"distill", "finetune"}
    model = load_local(local)
    assert model.config["category"] == category
    assert _same(model.local_net.state_dict(), {k[len("local_net."):]: v for k, v in reference.items()
                                                if k.startswith("local_net.")})
    assert _same(model.decoder.state_dict(), {k[len("decoder."):]: v for k, v in reference.items()
                                              if k.startswith("decoder.")})
    assert train(synth_root, category, run, profile=get_profile("smoke", **PROFILE), teacher="random", seed=3,
                 progress=False, resume=True, until="finetune") == local  # already there: reused
    path = train(synth_root, category, run, profile=get_profile("smoke", **PROFILE), teacher="random", seed=3,
                 progress=False, resume=True)
    assert _same(load_model(path).state_dict(), reference)
    # chapter 2 run again after chapter 4 finished the model: still Local-Net, not glance.pt
    assert train(synth_root, category, run, profile=get_profile("smoke", **PROFILE), teacher="random", seed=3,
                 progress=False, resume=True, until="finetune") == local
    load_local(local)
    with pytest.raises(ValueError, match="until must be"):
        train(synth_root, category, run, profile=get_profile("smoke"), teacher="random", until="distill")


def test_sigkill_while_writing_a_checkpoint_keeps_the_previous_one(synth_root, category, reference, tmp_path):
    run = tmp_path / "run"
    proc = _spawn(run, synth_root, category, kill_in_save=4)  # dies inside the 4th save
    proc.wait(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    ck = checkpoint.load(run / "checkpoint.pt")  # the 3rd checkpoint, intact
    assert ck["step"] > 0
    leftovers = [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    assert leftovers, "the kill should have left a half-written temp file behind"
    path = train(synth_root, category, run, profile=get_profile("smoke", **PROFILE), teacher="random", seed=3,
                 progress=False, resume=True)
    assert _same(load_model(path).state_dict(), reference)
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")], "stale temp files are cleaned on resume"


def test_same_seed_gives_identical_metrics_twice(synth_root, category, tmp_path):
    out = []
    for i in range(2):
        assert main(["train", "--data", str(synth_root), "--category", category, "--profile", "smoke",
                     "--seed", "7", "--out", str(tmp_path / f"run{i}")]) == 0
        assert main(["evaluate", "--run", str(tmp_path / f"run{i}"), "--data", str(synth_root), "--category",
                     category, "--out", str(tmp_path / f"ev{i}")]) == 0
        m = json.loads((tmp_path / f"ev{i}" / "metrics.json").read_text())
        m.pop("seconds_per_image")
        out.append(m)
    assert out[0] == out[1]


def _snapshot(*roots):
    files = {}
    for root in roots:
        for p in Path(root).rglob("*"):
            if p.is_file():
                files[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return files


def test_nothing_is_written_outside_the_run_and_output_folders(synth_root, category, tmp_path, monkeypatch):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    before = _snapshot(synth_root, home, work)
    run, ev = work / "run", work / "ev"
    assert main(["train", "--data", str(synth_root), "--category", category, "--profile", "smoke", "--out", str(run)]) == 0
    assert main(["evaluate", "--run", str(run), "--data", str(synth_root), "--category", category, "--out", str(ev)]) == 0
    after = _snapshot(synth_root, home, work)
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    outside = [p for p in changed if not (p.startswith(str(run) + os.sep) or p.startswith(str(ev) + os.sep))]
    assert not outside, f"written outside the run/output folders: {outside}"
    # an existing run folder is not overwritten without --overwrite / --resume
    stamp = (run / "glance.pt").stat().st_mtime_ns
    assert main(["train", "--data", str(synth_root), "--category", category, "--profile", "smoke", "--out", str(run)]) == 1
    assert (run / "glance.pt").stat().st_mtime_ns == stamp


def test_unwritable_output_folder_is_a_clear_error(synth_root, category, tmp_path, capsys):
    if os.geteuid() == 0:
        target = Path("/proc/glance-lite-run")  # not writable even for root
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        target = ro / "run"
    assert main(["train", "--data", str(synth_root), "--category", category, "--profile", "smoke", "--out", str(target)]) == 1
    assert str(target) in capsys.readouterr().err


def test_constant_and_empty_maps():
    masks = np.zeros((3, 16, 16), bool)
    masks[0, 4:8, 4:8] = True
    const = np.full((3, 16, 16), 0.5, np.float32)
    # every pixel enters at one threshold: the curve jumps from (0,0) to (1,1); the area up to
    # FPR 0.3 under that straight line is 0.5 * 0.3 * 0.3, normalised by 0.3 -> 0.15
    assert au_pro(masks, const) == pytest.approx(0.15)
    m = evaluate_maps(masks, const, np.array([1, 0, 0]), ["x", "good", "good"])
    assert m["pixel_auroc"] == pytest.approx(0.5) and m["image_auroc"] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        au_pro(np.zeros((0, 16, 16), bool), np.zeros((0, 16, 16), np.float32))
