"""benchmarks/context_error.py: the noise ceiling of R^2 and fabric's error by distance to a dot."""
import importlib.util
from pathlib import Path

import numpy as np

from glance_lite.train import train

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("bench_context_error", ROOT / "benchmarks" / "context_error.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_render_pair_differs_only_by_pixel_noise():
    from glance_lite.data import synthetic as S
    mod = _module()
    a, b, p = mod.render_pair("fabric", np.random.default_rng(0), S.Canvas(256))
    assert a.shape == b.shape == (256, 256, 3) and "ink" in p
    d = a - b
    assert 0.01 < d.std() < 0.05 and abs(d.mean()) < 0.005  # sqrt(2) * 0.02 noise, same layout


def test_context_error_prints_ceiling_and_distance_bands(synth_root, tmp_path, capsys):
    run = tmp_path / "r"
    train(run, synth_root, "fabric", "smoke", "random", seed=0, progress=False)
    assert _module().main([str(run), "--category", "fabric", "--images", "2"]) == 0
    out = capsys.readouterr().out
    ceiling = float(out.split("R^2 noise ceiling ")[1].split(";")[0])
    assert 0.5 < ceiling <= 1.0
    bands = [r for r in out.splitlines() if " px | " in r]
    assert bands and abs(sum(float(r.split("|")[-1]) for r in bands) - 1.0) < 0.05  # shares sum to 1
