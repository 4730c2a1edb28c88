"""The `glance-lite` command's first ten minutes: fast help, clear messages, nothing written by surprise."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from glance_lite import cli
from glance_lite.profiles import get_profile


def _python(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120)


def test_help_and_import_do_not_load_torch():
    done = _python("-m", "glance_lite.cli", "--help")
    assert done.returncode == 0 and "usage: glance-lite" in done.stdout
    done = _python("-c", "import sys, glance_lite.cli; print('torch' in sys.modules)")
    assert done.stdout.strip() == "False", done.stderr
    done = _python("-m", "glance_lite.cli", "--version")
    assert done.returncode == 0 and done.stdout.strip() == "glance_lite 0.1.0"


def test_package_names_are_lazy_but_all_there():
    import glance_lite
    from glance_lite.local_net import LocalNet
    assert glance_lite.LocalNet is LocalNet
    assert all(hasattr(glance_lite, name) for name in glance_lite.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        glance_lite.nope


def test_every_option_has_a_help_text():
    parser = cli.build_parser()
    subs = next(a for a in parser._actions if a.dest == "command").choices
    missing = [f"{name} {opt.option_strings[0]}" for name, sub in subs.items()
               for opt in sub._actions if opt.option_strings and not opt.help]
    assert missing == []


@pytest.mark.parametrize("command, advice", [
    ("train", "run the same command again with --resume"),
    ("demo", "run the same command again: it continues"),
    ("compare", "run the same command again: its Glance run continues"),
    ("synth", "run the same command again (finished categories are kept)"),
    ("evaluate", "run the same command again"),
])
def test_ctrl_c_names_what_works_for_the_command(monkeypatch, capsys, command, advice):
    def interrupted(argv):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "run", interrupted)
    assert cli.main([command, "--data", "x"]) == 130
    err = capsys.readouterr().err.strip()
    assert err == f"glance-lite: interrupted; {cli._AFTER_INTERRUPT[command]}" and advice in err
    assert ("--resume" in err) == (command == "train")


@pytest.fixture(scope="module")
def smoke_demo(tmp_path_factory):
    """One smoke demo of one category, run as a user would (stderr is a pipe, not a terminal)."""
    tmp = tmp_path_factory.mktemp("demo")
    done = _python("-m", "glance_lite.cli", "demo", "--profile", "smoke", "--category", "circuit",
                   "--data", str(tmp / "data"), "--out", str(tmp / "runs"), "--device", "cpu")
    return tmp, done


def test_demo_output_is_quiet_and_says_what_it_means(smoke_demo):
    tmp, done = smoke_demo
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("UNTRAINED") == 1 and "UserWarning" not in done.stderr  # one notice
    assert "\r" not in done.stderr and "\r" not in done.stdout  # no progress bars in a log
    assert "circuit: train phase done" in done.stdout  # one line per phase instead
    assert re.search(r"circuit: Glance trained in \d+ s and scored the test set in \d+ s \(\d+ s; .*"
                     r"local-only baseline \d+ s; \d+ s in all", done.stdout)  # the budget's parts
    assert cli.MEANING["smoke"] in done.stdout
    assert f"figure: {tmp / 'runs' / 'circuit' / 'eval' / 'figure.png'}" in done.stdout
    assert (tmp / "runs" / "circuit" / "eval" / "figure.png").is_file()
    assert [p.name for p in (tmp / "data").iterdir()] == ["circuit"]  # --category: only that one
    assert f"summary: {tmp / 'runs' / 'summary.json'}" in done.stdout


def test_other_warnings_are_one_plain_line():
    # in a fresh process: pytest records warnings instead of printing them
    script = """if True:
        import warnings
        from glance_lite import cli
        from glance_lite.teacher import load_teacher
        def run(argv):
            warnings.warn("something to know", UserWarning)
            load_teacher("random")  # the loud box: the command has said it already, in one line
            return 0
        cli.run = run
        raise SystemExit(cli.main(["demo"]))
    """
    done = _python("-c", script)
    assert done.returncode == 0 and done.stderr == "glance-lite: warning: something to know\n"


def _tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("command", ["demo", "synth"])
def test_refuses_to_write_into_an_unrelated_folder(tmp_path, capsys, command):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "holiday.jpg").write_bytes(b"not ours")
    flag = "--data" if command == "demo" else "--out"
    assert cli.main([command, "--profile", "smoke", flag, str(photos)]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"glance-lite: error: {photos} is not empty") and "--force-data" in err
    assert _tree(photos) == ["holiday.jpg"]  # nothing added


def test_a_clashing_category_refuses_before_anything_is_generated(tmp_path, capsys):
    from glance_lite.data import make_synthetic
    from glance_lite.profiles import get_profile
    data = make_synthetic(tmp_path / "data", categories=["fabric"], **dict(get_profile("smoke").synthetic))
    (data / "circuit" / "train").mkdir(parents=True)  # someone else's circuit, no stamp
    before = _tree(data)
    assert cli.main(["demo", "--profile", "smoke", "--data", str(data), "--out", str(tmp_path / "runs")]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"{data / 'circuit'} is not a synthetic category" in err
    assert "--force-data" in err and "overwrite=True" not in err
    assert _tree(data) == before and not (tmp_path / "runs").exists()


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No ImageNet weights in the torch cache, no download allowed, and a download that fails."""
    import types
    from glance_lite import teacher

    def no_network(**kw):
        raise OSError("no network")
    monkeypatch.setattr(teacher, "weights_path", lambda: tmp_path / "hub" / "resnet18-f37072fd.pth")
    monkeypatch.setattr(teacher, "WEIGHTS", types.SimpleNamespace(url=teacher.WEIGHTS.url, get_state_dict=no_network))
    for var in ("GLANCE_TEACHER", "COLAB_RELEASE_TAG"):
        monkeypatch.delenv(var, raising=False)
    return teacher


def _args(*argv):
    return cli.build_parser().parse_args(["train", "--data", "d", "--category", "c", "--out", "o", *argv])


def test_auto_teacher_offline_is_random_and_says_so_once(offline, capsys):
    from glance_lite.profiles import get_profile
    assert _args().teacher == "auto"
    assert cli._teacher_for(_args(), get_profile("cpu")) == "random"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("NOTE: using an UNTRAINED ResNet-18 teacher (offline: ")
    assert str(offline.weights_path()) in err and "--teacher imagenet" in err
    assert offline.resolve_teacher("auto", get_profile("cpu")) [0] == "random"
    assert capsys.readouterr().err == ""  # once per process, whoever asks again (train, compare, ...)
    offline._announced.clear()
    assert offline.resolve_teacher("auto", get_profile("smoke")) == (
        "random", "UNTRAINED ResNet-18 teacher (the default of the smoke profile); scores are not comparable "
                  "with the paper")
    assert "(the default of the smoke profile)" in capsys.readouterr().err


def test_one_teacher_policy_for_every_caller(offline, monkeypatch, capsys):
    """teacher.resolve_teacher: Colab and $GLANCE_TEACHER lead to ImageNet (an explicit ImageNet is
    fetched now, so a failure comes before any training), a cached file is used as it is."""
    from glance_lite.profiles import get_profile
    fetched = []
    monkeypatch.setattr(offline, "_imagenet_state_dict", lambda: fetched.append("imagenet"))
    monkeypatch.setenv("COLAB_RELEASE_TAG", "1")  # Colab: torchvision downloads on first use
    assert offline.resolve_teacher("auto", get_profile("cpu")) == ("imagenet", "") and fetched == []
    monkeypatch.delenv("COLAB_RELEASE_TAG")
    monkeypatch.setenv("GLANCE_TEACHER", "imagenet")
    assert cli._teacher_for(_args(), get_profile("smoke")) == "imagenet" and fetched == ["imagenet"]  # now
    monkeypatch.setenv("GLANCE_TEACHER", "random")
    assert offline.resolve_teacher("auto", get_profile("cpu"))[0] == "random"
    assert "($GLANCE_TEACHER)" in capsys.readouterr().err
    monkeypatch.delenv("GLANCE_TEACHER")
    offline.weights_path().parent.mkdir(parents=True)
    offline.weights_path().write_bytes(b"cached")
    assert cli._teacher_for(_args(), get_profile("cpu")) == "imagenet" and fetched == ["imagenet"]
    assert capsys.readouterr().err == ""


def test_explicit_imagenet_offline_fails_before_any_data_is_written(offline, tmp_path, capsys):
    rc = cli.main(["demo", "--profile", "cpu", "--teacher", "imagenet", "--data", str(tmp_path / "data"),
                   "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and err[0].startswith("glance-lite: error: ImageNet ResNet-18 weights")
    assert "resnet18-f37072fd.pth" in err[0] and "--teacher random" in err[0] and "no network" in err[0]
    assert not (tmp_path / "data").exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("n", [1, 3])
def test_figure_grid_has_a_title_and_a_colour_bar(tmp_path, n):
    import torch
    from glance_lite.viz import figure_grid
    maps = torch.rand(n, 32, 32)
    fig = figure_grid(torch.rand(n, 3, 32, 32), (torch.rand(n, 1, 32, 32) > 0.5).float(), maps,
                      ["swap"] * n, tmp_path / "figure.png", title="profile smoke, teacher random, circuit")
    assert (tmp_path / "figure.png").stat().st_size > 0
    assert len(fig.axes) == 3 * n + 1  # the grid and one colour bar for all score maps
    bar = fig.axes[-1]
    assert bar.get_ylabel() == "anomaly score s"
    assert bar.get_ylim() == pytest.approx((float(maps.min()), float(maps.max())))
    assert fig.get_suptitle() == "profile smoke, teacher random, circuit"
    assert figure_grid(torch.rand(1, 3, 8, 8), torch.zeros(1, 1, 8, 8), torch.rand(1, 8, 8), ["good"]).get_suptitle() == ""


@pytest.mark.parametrize("command", ["train", "evaluate", "compare"])
def test_a_data_folder_without_categories_shows_the_layout(tmp_path, capsys, command):
    empty = tmp_path / "empty"
    (empty / "photos").mkdir(parents=True)  # a sub-folder, but no train/ or test/ in it
    run = tmp_path / "run"
    run.mkdir()
    (run / "glance.pt").write_bytes(b"")  # only checked for existence before the data
    extra = ["--run", str(run)] if command == "evaluate" else ["--profile", "smoke"]
    rc = cli.main([command, *extra, "--data", str(empty), "--category", "circuit", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and err[-4] == f"glance-lite: error: {empty} holds no category folder; --data expects " \
                                  f"the MVTec AD layout:"
    assert [line.split()[0] for line in err[-3:]] == [
        "CATEGORY/train/good/*.png", "CATEGORY/test/<defect>/*.png", "CATEGORY/ground_truth/<defect>/<name>_mask.png"]
    assert not (tmp_path / "out").exists()


def test_evaluate_without_a_trained_model_suggests_train(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["evaluate", "--run", str(run), "--data", "data/x", "--category", "circuit", "--out", str(tmp_path / "ev")]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"glance-lite: error: {run} has no glance.pt (no trained model); train one first: "
                   f"`glance-lite train --data data/x --category circuit --out {run}`")
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"")  # an interrupted training
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.endswith(f"--out {run} --resume` (same --profile and --teacher as before)")
    assert not (tmp_path / "ev").exists()


@pytest.mark.parametrize("command", ["train", "demo", "compare"])
def test_arch_option(command, capsys):
    argv = {"train": ["--data", "d", "--category", "c", "--out", "o"], "demo": [],
            "compare": ["--data", "d", "--category", "c", "--out", "o"]}[command]
    parser = cli.build_parser()
    with pytest.raises(SystemExit) as exc:
        parser.parse_args([command, *argv, "--arch", "wide"])
    assert exc.value.code == 2 and "invalid choice: 'wide'" in capsys.readouterr().err
    args = parser.parse_args([command, *argv, "--profile", "cpu", "--arch", "paper"])
    assert args.arch == "paper"
    from glance_lite.profiles import Profile, get_profile
    if "global_arch" in Profile.__dataclass_fields__:  # the field --arch overrides
        assert cli._profile(args) == get_profile("cpu", global_arch="paper")
        plain = cli._profile(parser.parse_args([command, *argv, "--profile", "cpu"]))
        assert plain == get_profile("cpu")  # no --arch: the profile as it is
        assert cli._demo_out(plain) == Path("runs/demo-cpu")
        other = "paper" if plain.global_arch == "coords" else "coords"
        assert cli._demo_out(get_profile("cpu", global_arch=other)) == Path(f"runs/demo-cpu-{other}")
        centred = parser.parse_args([command, *argv, "--profile", "cpu", "--arch", "centred"])
        assert cli._profile(centred).global_arch == "centred"  # the option (global_net.py) is reachable
        from glance_lite.global_net import ARCHS
        assert cli.ARCHS == ARCHS  # the CLI's torch-free copy of the architectures


def test_pipeline_diagram_names_every_stage(tmp_path):
    """viz.pipeline_diagram: one box per stage of the method, every arrow between known boxes."""
    from glance_lite.viz import _ARROWS, _BOXES, pipeline_diagram
    fig = pipeline_diagram(tmp_path / "pipeline.png")
    text = " ".join(t.get_text() for t in fig.axes[0].texts)
    for word in ("Local-Net", "Global-Net", "IAD", "DAD", "IDW", "λs", "hole"):
        assert word in text
    assert all(a in _BOXES and b in _BOXES for a, b in _ARROWS)
    assert (tmp_path / "pipeline.png").stat().st_size > 10_000


def test_an_early_stopped_phase_still_gets_its_line(capsys):
    lines = cli._phase_lines(get_profile("cpu"), "circuit")
    for step in range(1, 1301):  # the Global-Net phase stopped at 1300 of 1500 steps
        lines("train", step)
    assert "train phase done" not in capsys.readouterr().out
    lines.finish()
    assert "circuit: train phase done, 1300 steps of at most 1500" in capsys.readouterr().out
