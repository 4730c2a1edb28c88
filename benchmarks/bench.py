"""glance_lite benchmark: score maps, conv floor, training throughput, AUPRO, memory.

    python benchmarks/bench.py            # full run (~10 min on 2 CPU cores)
    python benchmarks/bench.py --quick    # < 2 min on 2 CPU cores
    python benchmarks/bench.py --device cuda

Prints a table of measured figures and ratios (machine, device and torch version first) and
writes the same numbers to benchmarks/results/<device>.json (or --json PATH). Every ratio
compares two measurements taken in this same run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from glance_lite import DADHead, GlobalNet, LocalNet, PatchGrid, normalize  # noqa: F401
from glance_lite.heads import iad_score
from glance_lite.losses import joint_loss, local_loss
from glance_lite.local_net import Decoder
from glance_lite.metrics import au_pro, pro_reference
from glance_lite.patches import crop, hole_masks, random_top_left
from glance_lite.scoring import patch_features, patch_features_naive
from glance_lite.stains import add_stains
from glance_lite.teacher import load_teacher


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def timeit(fn, dev, repeat: int = 3, warmup: int = 1) -> float:
    """Best-of-`repeat` seconds of fn() after `warmup` calls."""
    for _ in range(warmup):
        fn()
    sync(dev)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        sync(dev)
        best = min(best, time.perf_counter() - t)
    return best


def flops_of(fn) -> int:
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


class PeakRSS:
    """Peak resident memory (bytes) above the starting level, sampled every 5 ms (CPU)."""

    def __enter__(self):
        self.base = self.peak = self._rss()
        self._stop = False
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()
        return self

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _loop(self):
        while not self._stop:
            self.peak = max(self.peak, self._rss())
            time.sleep(0.005)

    def __exit__(self, *exc):
        self._stop = True
        self._t.join()
        self.delta = self.peak - self.base


def bench_maps(dev, quick, res):
    """1 + 2 + 5: score-map throughput, naive reference, conv floor, peak memory."""
    torch.manual_seed(0)
    L, G = LocalNet().to(dev).eval(), GlobalNet().to(dev).eval()
    grid = PatchGrid()
    n_img = 2 if quick else (8 if dev.type == "cpu" else 64)
    imgs = torch.rand(n_img, 3, 256, 256)

    # FLOPs of one full 400-patch map done the plain way (what the naive loop executes)
    one = normalize(imgs[:1].to(dev))
    m = grid.masks(dev)[:1]
    with torch.inference_mode():
        f_global = flops_of(lambda: G(one, m))
        f_local = flops_of(lambda: L(one[:, :, :33, :33]))
    nominal = grid.n_patches * (f_global + f_local)
    res["flops_per_map_nominal"] = nominal

    with torch.inference_mode():
        chunk = 48 if dev.type == "cpu" else 1600
        t_fast = timeit(lambda: patch_features(L, G, imgs, grid, chunk=chunk), dev, repeat=2 if quick else 3)
        executed = flops_of(lambda: patch_features(L, G, imgs[:1], grid, chunk=chunk))
        with PeakRSS() as mem:
            patch_features(L, G, imgs[:1], grid, chunk=chunk)
        res["map_images_per_s"] = n_img / t_fast
        res["flops_per_map_executed"] = executed
        res["peak_mem_map_batch_MB"] = (torch.cuda.max_memory_allocated() if dev.type == "cuda" else mem.delta) / 2**20
        res["map_chunk"] = chunk

        # naive per-patch loop on a subset of patches, extrapolated to 400, and equality check
        sub = PatchGrid(per_side=4 if quick else 8)
        t_naive = timeit(lambda: patch_features_naive(L, G, imgs[:1], sub), dev, repeat=1, warmup=0)
        res["naive_images_per_s"] = 1.0 / (t_naive * grid.n_patches / sub.n_patches)
        a = patch_features(L, G, imgs[:1], sub)
        b = patch_features_naive(L, G, imgs[:1], sub)
        res["max_abs_diff_vs_naive"] = max((a[0] - b[0]).abs().max().item(), (a[1] - b[1]).abs().max().item())
        res["speedup_vs_naive"] = res["map_images_per_s"] / res["naive_images_per_s"]

        if dev.type == "cuda":
            for dt, name in ((torch.bfloat16, "bf16"), (torch.float16, "fp16")):
                t_amp = timeit(lambda: patch_features(L, G, imgs, grid, chunk=chunk, amp_dtype=dt), dev)
                za = patch_features(L, G, imgs[:2], grid, chunk=chunk, amp_dtype=dt)
                zf = patch_features(L, G, imgs[:2], grid, chunk=chunk)
                s_a, s_f = iad_score(za[0].view(-1, 128), za[1].view(-1, 128)), iad_score(zf[0].view(-1, 128), zf[1].view(-1, 128))
                res[f"map_images_per_s_{name}"] = n_img / t_amp
                res[f"s_iad_rel_err_{name}"] = ((s_a - s_f).abs().max() / s_f.abs().max()).item()

    # the machine's own convolution throughput (a large dense 3x3 convolution)
    x = torch.randn(16 if quick else 32, 128, 64, 64, device=dev)
    w = torch.randn(256, 128, 3, 3, device=dev)
    with torch.inference_mode():
        fl = flops_of(lambda: torch.nn.functional.conv2d(x, w))
        t = timeit(lambda: torch.nn.functional.conv2d(x, w), dev)
    res["conv_floor_gflops"] = fl / t / 1e9
    res["map_effective_gflops_nominal"] = nominal * res["map_images_per_s"] / 1e9
    res["map_time_vs_floor_time"] = (1 / res["map_images_per_s"]) / (nominal / (res["conv_floor_gflops"] * 1e9))
    res["map_time_vs_floor_time_executed"] = (1 / res["map_images_per_s"]) / (
        res["flops_per_map_executed"] / (res["conv_floor_gflops"] * 1e9))


def bench_training(dev, quick, res):
    """3: iterations/s of Local-Net distillation (batch 64) and Global-Net + DAD (batch 64)."""
    torch.manual_seed(0)
    L, D, G, H = LocalNet().to(dev), Decoder().to(dev), GlobalNet().to(dev), DADHead().to(dev)
    teacher = load_teacher("random", 64).to(dev)  # timing only: the weights do not matter
    imgs = torch.rand(16, 3, 256, 256)
    opt_l = torch.optim.Adam(list(L.parameters()) + list(D.parameters()), 2e-4)
    opt_g = torch.optim.Adam(list(G.parameters()) + list(H.parameters()), 1e-4)

    def local_it():
        tl = random_top_left(64, 256, 33)
        p = normalize(crop(imgs[torch.randint(0, 16, (64,))], tl.unsqueeze(1), 33)[:, 0].to(dev))
        z = L(p)
        loss, _ = local_loss(D(z), teacher(p), z)
        opt_l.zero_grad()
        loss.backward()
        opt_l.step()

    def global_it():
        tl = random_top_left(64, 256, 33)
        im = imgs[torch.randint(0, 16, (64,))]
        p = crop(im, tl.unsqueeze(1), 33)[:, 0]
        pn, _ = add_stains(p)
        im, p, pn = im.to(dev), p.to(dev), pn.to(dev)
        with torch.no_grad():
            zl, zn = L(normalize(p)), L(normalize(pn))
        zg = G(normalize(im), hole_masks(tl, 256, 33).to(dev))
        real = torch.rand(64, device=dev) < 0.5
        loss, _ = joint_loss(zl, zg, H.logits(torch.where(real[:, None], zl, zn), zg), real)
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()

    n = 2 if quick else 5
    res["distill_it_per_s_b64"] = n / timeit(lambda: [local_it() for _ in range(n)], dev, repeat=1)
    res["global_it_per_s_b64"] = n / timeit(lambda: [global_it() for _ in range(n)], dev, repeat=1)


def bench_global_holes(dev, quick, res):
    """6: Global-Net holes trained per second, as the `cpu` profile trains them (context_train.py:
    centred Global-Net, train_batch images x holes_per_image lattice holes a step): Global-Net's
    forward + backward alone (`fast_global.features_at`), and the whole step (targets, DAD head on
    its stained negatives, loss, Adam); each for the reference path (fused=False: copy layer 1_2
    per hole, paste the window, then move it) and the fused one, in this same process. The
    Global-Net phase's own time is in every run's config.json ("seconds")."""
    from functools import partial

    from glance_lite import context_train
    from glance_lite.context_train import context_step, lattice, local_targets
    from glance_lite.fast_global import features_at, hole_free_front, window_side
    from glance_lite.model import Glance
    from glance_lite.profiles import get_profile
    prof = get_profile("cpu")
    d = prof.deviations
    torch.manual_seed(0)
    model = Glance(prof).to(dev)
    net, raw = model.global_net, torch.rand(prof.train_batch, 3, 256, 256)
    imgs = normalize(raw.to(dev))
    pos = lattice(256, 33, d.lattice_stride)
    g = torch.Generator().manual_seed(0)
    tl = pos[torch.randint(0, len(pos), (len(imgs) * d.holes_per_image,), generator=g)].to(dev)
    idx = torch.arange(len(imgs), device=dev).repeat_interleave(d.holes_per_image)

    def global_only(fused=True):
        z = features_at(net, imgs, hole_free_front(net, imgs), idx, tl, 33, window_side(33), fused=fused)
        z.pow(2).mean().backward()
        return z.detach()

    res["global_net_max_abs_diff_fused_vs_reference"] = float((global_only(True) - global_only(False)).abs().max())

    model.local_net.requires_grad_(False).eval()
    ctx = {"targets": local_targets(model.local_net, raw, pos), "positions": pos, "shift": 0}
    model.scaler.fit(ctx["targets"].float().view(-1, 128))
    opt = torch.optim.Adam(list(net.parameters()) + list(model.head.parameters()), 1e-4)

    def step(fused=True):
        context_train.features_at = partial(features_at, fused=fused)
        try:
            loss, _ = context_step(model, raw, ctx, g, prof.train_batch, d, prof.lambda_t, dev, d.hard_holes_gamma)
        finally:
            context_train.features_at = features_at
        opt.zero_grad()
        loss.backward()
        opt.step()

    reps = 2 if quick else 6
    for key, fn in (("global_net_holes_per_s", global_only), ("train_step_holes_per_s", step)):
        for suffix, fused in (("_reference", False), ("", True)):
            res[key + suffix] = len(tl) * reps / timeit(lambda: [fn(fused) for _ in range(reps)], dev,
                                                        repeat=2 if quick else 3)
        res[key.replace("holes_per_s", "speedup_vs_reference")] = res[key] / res[key + "_reference"]
    res["train_step_seconds"] = len(tl) / res["train_step_holes_per_s"]


# A Colab T4's sustained float32 rate on these small convolutions, as an assumed range: its
# peak is 8.1 TFLOP/s; small-batch training reaches roughly a quarter to a half of it.
T4_TFLOPS = (2.0, 4.0)


def step_flops(fn) -> int:
    """FLOPs of one training step, forward and backward (counted on the CPU)."""
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


def bench_colab_estimate(res):
    """How long the `colab` profile takes for one synthetic category on a T4, estimated.

    FLOPs are counted, not guessed: one step of each phase at the profile's batch sizes and
    teacher input, times its number of steps, plus the executed FLOPs of the test set's maps.
    Only the T4's sustained rate (T4_TFLOPS) is assumed; data loading is not included.
    """
    from glance_lite.data.synthetic import CATEGORY_DEFECTS
    from glance_lite.profiles import get_profile

    prof = get_profile("colab")
    torch.manual_seed(0)
    L, D, G, H = LocalNet(), Decoder(), GlobalNet(), DADHead()
    teacher = load_teacher("random", prof.teacher_input)  # only FLOPs are counted here

    def distill(b):
        p = torch.rand(b, 3, 33, 33)
        z = L(p)
        local_loss(D(z), teacher(p), z)[0].backward()

    def train(b):
        tl = random_top_left(b, 256, 33)
        im = torch.rand(b, 3, 256, 256)
        with torch.no_grad():
            zl, zn = L(crop(im, tl.unsqueeze(1), 33)[:, 0]), L(torch.rand(b, 3, 33, 33))
        zg = G(im, hole_masks(tl, 256, 33))
        real = torch.rand(b) < 0.5
        joint_loss(zl, zg, H.logits(torch.where(real[:, None], zl, zn), zg), real)[0].backward()

    syn = dict(prof.synthetic)
    n_test = syn["n_test_good"] + syn["n_test_per_defect"] * max(len(d) for d in CATEGORY_DEFECTS.values())
    phases = {
        "distill": prof.distill_steps * step_flops(lambda: distill(prof.distill_batch)),
        "finetune": prof.finetune_steps * step_flops(lambda: distill(prof.finetune_batch)),
        "train": prof.train_steps * step_flops(lambda: train(prof.train_batch)),
        "evaluate": n_test * res["flops_per_map_executed"],
    }
    total = sum(phases.values())
    res["colab_profile_tflop"] = {k: v / 1e12 for k, v in phases.items()}
    res["colab_t4_minutes_estimate"] = [total / (r * 1e12) / 60 for r in reversed(T4_TFLOPS)]


def bench_pro(quick, res):
    """4: exact AUPRO on 1725 maps of 256x256 vs the per-threshold reference on a subset."""
    rng = np.random.default_rng(0)
    n = 300 if quick else 1725
    yy, xx = np.mgrid[:256, :256]
    masks = np.zeros((n, 256, 256), bool)
    for i in range(0, n, 3):  # a third of the images have 1-3 blobs
        for _ in range(rng.integers(1, 4)):
            cy, cx, r = rng.integers(20, 236), rng.integers(20, 236), rng.integers(4, 20)
            masks[i] |= (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    maps = (rng.random((n, 256, 256), dtype=np.float32) + masks * 0.3).astype(np.float32)
    t = time.perf_counter()
    au_pro(masks, maps)
    res["aupro_seconds"] = time.perf_counter() - t
    res["aupro_maps"] = n
    res["aupro_seconds_per_1725"] = res["aupro_seconds"] * 1725 / n
    k = 6
    small_m, small_s = masks[:k, ::8, ::8], np.round(maps[:k, ::8, ::8], 2)  # 6 maps 32x32
    t = time.perf_counter()
    ref = pro_reference(small_m, small_s)
    t_ref = time.perf_counter() - t
    t = time.perf_counter()
    fast = au_pro(small_m, small_s)
    t_fast = time.perf_counter() - t
    res["aupro_reference_seconds_subset"] = t_ref
    res["aupro_speedup_vs_reference_subset"] = t_ref / max(t_fast, 1e-9)
    res["aupro_abs_diff_vs_reference"] = abs(ref - fast)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a run of under two minutes on 2 CPU cores")
    ap.add_argument("--device", default="cpu", help="cpu | cuda")
    ap.add_argument("--json", default=None, help="where to write the results (default benchmarks/results/<device>.json)")
    args = ap.parse_args(argv)
    dev = torch.device(args.device)
    res = {"machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
           "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
           "torch": torch.__version__, "threads": torch.get_num_threads(), "quick": args.quick}
    t0 = time.perf_counter()
    bench_maps(dev, args.quick, res)
    bench_training(dev, args.quick, res)
    bench_global_holes(dev, args.quick, res)
    bench_pro(args.quick, res)
    bench_colab_estimate(res)
    res["benchmark_seconds"] = time.perf_counter() - t0
    rows = [
        ("machine", res["machine"]), ("device", res["device"]), ("torch", f"{res['torch']} ({res['threads']} threads)"),
        ("score maps: images/s (400 patches)", f"{res['map_images_per_s']:.3f}"),
        ("score maps: naive loop images/s", f"{res['naive_images_per_s']:.4f}"),
        ("  speed-up vs naive", f"{res['speedup_vs_naive']:.1f}x  (max |diff| {res['max_abs_diff_vs_naive']:.1e})"),
        ("conv floor GFLOP/s", f"{res['conv_floor_gflops']:.1f}"),
        ("GFLOP per map: nominal / executed", f"{res['flops_per_map_nominal'] / 1e9:.1f} / {res['flops_per_map_executed'] / 1e9:.1f}"),
        ("  map time / (nominal FLOPs at floor)", f"{res['map_time_vs_floor_time']:.2f}"),
        ("  map time / (executed FLOPs at floor)", f"{res['map_time_vs_floor_time_executed']:.2f}"),
        ("peak memory of a map batch (MB)", f"{res['peak_mem_map_batch_MB']:.0f} (chunk {res['map_chunk']})"),
        ("distillation it/s (batch 64)", f"{res['distill_it_per_s_b64']:.2f}"),
        ("Global-Net + DAD it/s (batch 64)", f"{res['global_it_per_s_b64']:.2f}"),
        ("cpu-profile training: Global-Net holes/s (fwd + bwd)",
         f"{res['global_net_holes_per_s']:.0f} (reference path {res['global_net_holes_per_s_reference']:.0f}: "
         f"{res['global_net_speedup_vs_reference']:.2f}x, max |diff| {res['global_net_max_abs_diff_fused_vs_reference']:.1e})"),
        ("  whole step: holes/s, seconds a step",
         f"{res['train_step_holes_per_s']:.0f}, {res['train_step_seconds']:.3f} (reference path "
         f"{res['train_step_holes_per_s_reference']:.0f}: {res['train_step_speedup_vs_reference']:.2f}x)"),
        (f"AUPRO on {res['aupro_maps']} maps (s)", f"{res['aupro_seconds']:.2f}  (-> {res['aupro_seconds_per_1725']:.2f} s per 1725)"),
        ("AUPRO vs per-threshold reference", f"{res['aupro_speedup_vs_reference_subset']:.0f}x on a subset (|diff| {res['aupro_abs_diff_vs_reference']:.1e})"),
    ]
    for key in ("bf16", "fp16"):
        if f"map_images_per_s_{key}" in res:
            rows.append((f"score maps {key} images/s", f"{res[f'map_images_per_s_{key}']:.1f} (s_IAD rel. err {res[f's_iad_rel_err_{key}']:.1e})"))
    tf = res["colab_profile_tflop"]
    lo, hi = res["colab_t4_minutes_estimate"]
    rows.append(("colab profile, one category: TFLOP", " + ".join(f"{k} {v:.0f}" for k, v in tf.items())))
    rows.append((f"  -> T4 minutes at {T4_TFLOPS[1]:.0f}..{T4_TFLOPS[0]:.0f} TFLOP/s (assumed)", f"{lo:.1f} .. {hi:.1f}"))
    rows.append(("benchmark wall time (s)", f"{res['benchmark_seconds']:.0f}"))
    width = max(len(r[0]) for r in rows)
    print("\n".join(f"{a:<{width}}  {b}" for a, b in rows))
    write_results(Path(args.json) if args.json else
                  Path(__file__).parent / "results" / f"{dev.type}{'-quick' if args.quick else ''}.json", res)
    return 0


def write_results(out: Path, res: dict) -> None:
    """The figures as JSON at `out` (folders made as needed), and where they went."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    sys.exit(main())
