"""The GPU figures in one short run (about 5 minutes on a recent GPU): what a person with a GPU
runs, and what this project's sessions run when they are lent one.

    python benchmarks/gpu.py                 # cuda: bench.py --quick + one colab-profile category
    python benchmarks/gpu.py --device cpu --profile smoke --category circuit   # rehearsal, seconds

1. `bench.py --quick` on the device: score-map images/s at 400 patches (float32, and bf16 / fp16
   where the device runs them, with each dtype's s_IAD error against float32), training it/s of
   each phase, the AUPRO timing.
2. One synthetic category with the `colab` profile (or --profile): data, training (all three
   phases, timed from training.py's log) and evaluation, timed end to end, with its PRO.
Everything goes to benchmarks/results/gpu-<device name>.json and is printed.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402

from glance_lite.data import make_synthetic  # noqa: E402
from glance_lite.devices import resolve_device  # noqa: E402
from glance_lite.evaluation import evaluate  # noqa: E402
from glance_lite.profiles import get_profile  # noqa: E402
from glance_lite.teacher import resolve_teacher  # noqa: E402
from glance_lite.training import train  # noqa: E402


def one_category(profile: str, category: str, device: torch.device, teacher: str, work: Path) -> dict:
    """Train + evaluate one synthetic category; seconds of each part and the metrics."""
    prof = get_profile(profile)
    t0 = time.perf_counter()
    data = make_synthetic(work / "data", seed=0, categories=[category], **dict(prof.synthetic))
    t1 = time.perf_counter()
    train(data, category, work / "run", profile=prof, teacher=teacher, device=device, progress=False)
    t2 = time.perf_counter()
    m = evaluate(work / "run", data, category, device=device, figure=False)
    t3 = time.perf_counter()
    return {"profile": prof.name, "category": category, "teacher": teacher, "data_s": t1 - t0,
            "train_s": t2 - t1, "evaluate_s": t3 - t2, "total_s": t3 - t0, "pro": m["pro"],
            "amp": m["amp"], "r2_global": m.get("context", {}).get("r2_global")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda (default) | cuda:N | cpu (rehearsal only)")
    ap.add_argument("--profile", default="colab", help="profile of the one-category run (default colab)")
    ap.add_argument("--category", default="circuit", help="synthetic category (default circuit)")
    ap.add_argument("--teacher", default="auto",
                    help="auto (ImageNet when its weights are cached or downloadable, else random) | imagenet | random")
    ap.add_argument("--skip-bench", action="store_true", help="only the one-category run")
    args = ap.parse_args(argv)
    dev = resolve_device(args.device)  # a missing GPU fails here, naming the devices found
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    res: dict = {"device": name, "torch": torch.__version__}
    if not args.skip_bench:
        bench_json = Path(tempfile.mkdtemp()) / "bench.json"
        bench.main(["--quick", "--device", str(dev), "--json", str(bench_json)])
        res["bench"] = json.loads(bench_json.read_text())
    teacher, _ = resolve_teacher(args.teacher, get_profile(args.profile))  # the package's one policy
    with tempfile.TemporaryDirectory() as work:
        res["one_category"] = one_category(args.profile, args.category, dev, teacher, Path(work))
    oc = res["one_category"]
    print(f"\n{oc['profile']} profile, {oc['category']}, teacher {oc['teacher']}, {name}: data {oc['data_s']:.0f} s, "
          f"train {oc['train_s']:.0f} s, evaluate {oc['evaluate_s']:.0f} s (amp {oc['amp']}), "
          f"total {oc['total_s'] / 60:.1f} min; PRO {oc['pro']:.3f}, R2 Global-Net {oc['r2_global']}")
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()
    bench.write_results(Path(__file__).parent / "results" / f"gpu-{slug}.json", res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
