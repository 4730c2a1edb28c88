"""The short Python path of the README: `import glance_lite as gl` and five lines."""
import json

import pytest
import torch

import glance_lite as gl
from glance_lite.evaluation import load_scores


@pytest.fixture(scope="module")
def api_run(synth_root, tmp_path_factory):
    run = gl.train(synth_root, "circuit", tmp_path_factory.mktemp("api") / "runs" / "circuit", profile="smoke",
                   progress=False)
    return run


def test_the_five_lines_of_the_readme_run(api_run, synth_root):
    model = gl.load_model(api_run)
    test = gl.load_mvtec(synth_root, "circuit", "test")
    maps = model.anomaly_maps(test.images)
    report = gl.evaluate(api_run, synth_root, "circuit")
    assert maps.shape == (len(test), 256, 256) and torch.isfinite(maps).all()
    assert 0.0 <= report["pro"] <= 1.0 and (api_run / "eval" / "metrics.json").is_file()
    assert json.loads((api_run / "eval" / "metrics.json").read_text())["pro"] == report["pro"]


def test_a_loaded_model_reproduces_the_maps_evaluate_scored(api_run, synth_root, tmp_path):
    """The run's own profile (grid, lambda_s, IDW power, scaler, whitener, bank) travels with the
    model: its maps are the ones evaluate computed, to float tolerance."""
    model = gl.load_model(api_run)
    assert model.profile == gl.get_profile("smoke") and model.grid.per_side == 6
    gl.evaluate(api_run, synth_root, "circuit", out_dir=tmp_path / "ev", figure=False)
    scores, _ = load_scores(tmp_path / "ev")
    expected = scores.maps(model.profile.lambda_s, model.profile.idw_power)
    got = model.anomaly_maps(gl.load_mvtec(synth_root, "circuit", "test").images)
    assert torch.allclose(got, expected, atol=1e-6)
    # a map of another lambda_s is another map: the argument is used
    assert not torch.allclose(model.anomaly_maps(gl.load_mvtec(synth_root, "circuit", "test").images[:2],
                                                 lambda_s=0.0), got[:2])


def test_features_are_what_the_heads_see(api_run, synth_root):
    model = gl.load_model(api_run)
    images = gl.load_mvtec(synth_root, "circuit", "test").images[:2]
    z_l, z_g = model.features(images)
    assert z_l.shape == z_g.shape == (2, 36, 128)
    assert z_l.mean().abs() < 5  # standardised (the raw Z_l of an untrained Local-Net sits elsewhere)
    scores = model.score(images)
    from glance_lite.scoring import head_scores
    s_iad, s_dad = head_scores(model.head, z_l, z_g, model.whitener, model.bank)
    assert torch.allclose(scores.s_iad, s_iad) and torch.allclose(scores.s_dad, s_dad)


def test_training_from_in_memory_images(synth_root, tmp_path):
    images = gl.load_mvtec(synth_root, "circuit", "train").images
    run = gl.train(images, "my-parts", tmp_path / "r", profile="smoke", progress=False)
    model = gl.load_model(run)
    assert model.config["data_root"] is None and model.config["category"] == "my-parts"
    assert model.anomaly_maps(images[:1]).shape == (1, 256, 256)
    with pytest.raises(ValueError, match=r"\(N, 3, S, S\)"):
        gl.train(images[:, :1], "grey", tmp_path / "r2", profile="smoke", progress=False)


def test_the_run_records_each_phases_seconds_across_calls(synth_root, tmp_path):
    """config.json's "seconds": one entry per phase, kept when a later call continues the run."""
    images = gl.load_mvtec(synth_root, "circuit", "train").images
    run = gl.train(images, "parts", tmp_path / "r", profile="smoke", progress=False, until="finetune")
    first = json.loads((run / "config.json").read_text())["seconds"]
    gl.train(images, "parts", run, profile="smoke", progress=False, resume=True)
    seconds = json.loads((run / "config.json").read_text())["seconds"]
    assert set(seconds) == {"distill", "finetune", "train"} and all(v >= 0 for v in seconds.values())
    assert seconds["distill"] == first["distill"] and seconds["finetune"] == first["finetune"]


def test_the_baselines_answer_the_same_method(api_run, synth_root):
    from glance_lite.baselines.local_only import LocalOnly, load_local_net
    train, test = (gl.load_mvtec(synth_root, "circuit", s) for s in ("train", "test"))
    local = LocalOnly(load_local_net(api_run / "local.pt"), gl.load_model(api_run).grid).fit(train.images)
    assert local.anomaly_maps(test.images[:2]).shape == gl.load_model(api_run).anomaly_maps(test.images[:2]).shape


def test_one_amp_type_everywhere(api_run, synth_root):
    model = gl.load_model(api_run)
    images = gl.load_mvtec(synth_root, "circuit", "test").images[:1]
    assert torch.allclose(model.anomaly_maps(images, amp="off"), model.anomaly_maps(images, amp="auto"))
    with pytest.raises(ValueError, match="unknown amp 'half'"):
        model.anomaly_maps(images, amp="half")


def test_profiles_group_the_deviations_with_two_presets():
    cpu, paper = gl.get_profile("cpu"), gl.get_profile("paper")
    from glance_lite.profiles import PAPER, SHORT
    assert cpu.deviations == SHORT and paper.deviations == PAPER
    assert cpu.recipe == "short" and paper.recipe == "paper"
    assert paper.deviations == gl.Deviations() and paper.deviations.hole_sampling == "paper"
    assert paper.deviations.stain_kwargs() == {"min_radius": 2.0, "max_radius": 6.6, "min_opacity": 0.5}
    assert gl.get_profile("cpu", calibrate_dad=False).recipe == "custom"
    for bad, msg in [(dict(hole_sampling="dense"), "hole_sampling must be one of paper, lattice"),
                     (dict(nearest_iad=False), "calibrate_dad=True needs nearest_iad=True"),
                     (dict(trainsteps=3), "unknown profile field")]:
        with pytest.raises(ValueError, match=msg):
            gl.get_profile("cpu", **bad)


def test_a_profile_survives_its_config_json():
    from glance_lite.profiles import profile_from_config
    for name in ("smoke", "cpu", "colab", "paper"):
        prof = gl.get_profile(name, calibrate_dad=False)
        assert profile_from_config(json.loads(json.dumps(prof.to_dict()))) == prof


def test_accuracy_benchmark_runs_the_papers_recipe(synth_root, tmp_path, load_benchmark, capsys):
    """`benchmarks/accuracy.py --recipe paper`: every deviation off (a profile get_profile accepts)."""
    assert load_benchmark("accuracy").main(
        ["--recipe", "paper", "--profile", "smoke", "--datasets", "circuit", "--data", str(synth_root),
         "--real", str(tmp_path / "none"), "--out", str(tmp_path / "runs"), "--results", str(tmp_path / "res")]) == 0
    assert (tmp_path / "res" / "accuracy-smoke-paper-paper-recipe.md").is_file()
    meta = json.loads((tmp_path / "res" / "accuracy-smoke-paper-paper-recipe.meta.json").read_text())
    assert meta["profile"]["deviations"] == gl.Deviations().__dict__ | {"stain_radius": [2.0, 6.6]}
    config = json.loads(next((tmp_path / "runs").rglob("glance_run/config.json")).read_text())
    assert config["profile"]["deviations"]["global_arch"] == "paper"
    assert "| circuit | glance | 0 |" in capsys.readouterr().out


def test_scoring_variants_end_at_what_evaluate_scores(api_run, synth_root):
    """The scoring deviations one after another on one model (book ch. 6): the last variant is
    the run's own scoring, so its PRO is evaluate's."""
    from glance_lite.evaluation import SCORING_VARIANTS, scoring_variants
    model = gl.load_model(api_run)
    train, test = (gl.load_mvtec(synth_root, "circuit", s) for s in ("train", "test"))
    out = scoring_variants(model, train.images, test)
    assert list(out) == list(SCORING_VARIANTS)
    report = gl.evaluate(api_run, synth_root, "circuit", figure=False)
    assert out[SCORING_VARIANTS[-1]]["pro"] == pytest.approx(report["pro"], abs=1e-6)
