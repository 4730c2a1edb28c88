"""benchmarks/amp_error.py: where mixed precision changes a trained model's features."""
import pytest

from glance_lite.train import train


def test_amp_error_reports_each_network(synth_root, tmp_path, capsys, load_benchmark):
    run = tmp_path / "r"
    train(run, synth_root, "circuit", "smoke", "random", seed=0, progress=False)
    assert load_benchmark("amp_error").main([str(run), "--data", str(synth_root), "--category", "circuit",
                                             "--images", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("float32:") and len(lines) == 4
    local, glob = lines[1], lines[2]
    assert "Z_g 0.0e+00" in local           # Global-Net untouched when only Local-Net is bf16
    assert "standardised Z_l 0.0e+00" in glob  # and the other way round


def test_amp_error_needs_a_finished_run(tmp_path, load_benchmark):
    with pytest.raises(SystemExit, match="glance.pt not found"):
        load_benchmark("amp_error").main([str(tmp_path), "--data", str(tmp_path), "--category", "circuit"])
