"""benchmarks/side_by_side.py: one "A / B" row per (dataset, seed) finished in both tables."""
import json

import pytest


def result(pro: float, r2: float) -> dict:
    return {"glance": {"pro": pro, "per_kind": {"logical": {"pro": pro - 0.1}}, "r2_global": r2,
                       "dad_loss": float("nan"), "seconds": 400.4},
            "local_only": {"pro": 0.6}}


def test_rows_pair_the_same_dataset_and_seed(tmp_path, capsys, load_benchmark):
    mod = load_benchmark("side_by_side")
    a = {"fabric": {"0": result(0.9, 0.7), "1": result(0.85, 0.71)}, "tire": {"0": result(0.88, 0.8)}}
    b = {"fabric": {"0": result(0.75, 0.73)}, "tire": {"0": result(0.87, 0.86)}}
    pa, pb = tmp_path / "accuracy-new.json", tmp_path / "accuracy-old.json"
    pa.write_text(json.dumps(a))
    pb.write_text(json.dumps(b))
    assert mod.main([str(pa), str(pb)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Each cell: new / old.")
    rows = [r.split("|")[1:-1] for r in out.splitlines() if r.startswith("| fabric") or r.startswith("| tire")]
    assert [(r[0].strip(), r[1].strip()) for r in rows] == [("fabric", "0"), ("tire", "0")]  # fabric 1 only in A
    fabric = [c.strip() for c in rows[0]]
    assert fabric[2:6] == ["0.600", "0.900 / 0.750", "0.800 / 0.650", "– / –"]  # no structural PRO
    assert fabric[6] == "0.700 / 0.730" and fabric[7] == "– / –" and fabric[9] == "400 / 400"


def test_unreadable_file_is_one_line(tmp_path, load_benchmark):
    mod = load_benchmark("side_by_side")
    with pytest.raises(SystemExit, match=r"cannot read .*missing.json"):
        mod.main([str(tmp_path / "missing.json"), str(tmp_path / "missing.json")])
