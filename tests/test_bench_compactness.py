"""benchmarks/compactness.py runs end to end (smoke profile) and prints one row per lambda_c."""


def test_compactness_benchmark_prints_a_row_per_lambda(tmp_path, capsys, load_benchmark):
    mod = load_benchmark("compactness")
    assert mod.main(["--profile", "smoke", "--lambdas", "0", "2", "--data", str(tmp_path / "data"),
                     "--out", str(tmp_path / "runs")]) == 0
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| ") and r[2].isdigit()]
    assert [r.split("|")[1].strip() for r in rows] == ["0", "2"]
    assert all(0.0 <= float(r.split("|")[5]) <= 1.0 for r in rows)  # local-only PRO is a fraction
