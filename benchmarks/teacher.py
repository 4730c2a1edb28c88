"""How much of the offline results is the teacher? Measure a ResNet-18 teacher without training Glance.

    python benchmarks/teacher.py measure random runs/teachers/bn-s0.pth --seed 0
    python benchmarks/teacher.py build bn runs/teachers/bn-s0.pth --seed 0
    python benchmarks/teacher.py build deadleaves runs/teachers/deadleaves.pth --minutes 25

measure: for each teacher ("random", "imagenet" or a ResNet-18 weights file, as `--teacher` takes):
  probe      linear probe (logistic regression) of the teacher's average-pooled layer1..layer4
             on scikit-learn's digits (8x8, upsampled to the teacher's input size as a patch is;
             half train, half test): does the teacher separate anything at all?
  per real development set (--real; a fixed subset, below), PRO and image AUROC (max of the map) of
  gaussian@L    the MFFA-lite Gaussian peer (PaDiM-like) on the teacher's layer L alone and on
                layer1..3 (the peer's default): the peers' part of the teacher, by depth
  teacher-nn@L  nearest-neighbour patch scores on the teacher's own patch descriptor (layer L,
                average-pooled) on the raster grid; @4 is R(p), the distillation target: local-only
                with a perfect student
  pixels-nn     the same on the patch's own pixels (average-pooled to 11x11x3): no teacher at all
  local-only    the same with Local-Net distilled from this teacher (cpu profile, `train(...,
                until="finetune")`): what distillation keeps
  r2_student    how much of R(p)'s variance D(L(p)) reproduces on the normal test patches
build: writes a candidate offline teacher (a ResNet-18 state dict that `--teacher PATH` loads):
  bn          the untrained net of --seed with its BatchNorm statistics measured on crops of the
              offline images (an untrained net's BN layers are identities, so every channel keeps the
              offset the random convolutions give it: R(p)'s spread over patches is a third of its size)
  deadleaves  trained with a contrastive objective (SimCLR's NT-Xent) on procedurally generated
              dead-leaves images (Baradad et al., NeurIPS 2021), --minutes of CPU time

Subsets (so one teacher costs minutes): --train-images training images and --test-images test images,
spread evenly over each folder's sorted list (so every defect type keeps its share).
Results: one JSON line per teacher, appended to --results (default benchmarks/results/teacher.jsonl).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from glance_lite.baselines.common import gaussian_smooth, resnet_features
from glance_lite.baselines.gaussian import GaussianAD
from glance_lite.data import load_mvtec
from glance_lite.data.natural import distillation_images, random_crops
from glance_lite.idw import idw_maps
from glance_lite.metrics import au_pro, image_auroc, image_scores
from glance_lite.model import load_local
from glance_lite.neighbours import nearest_distances
from glance_lite.patches import PatchGrid
from glance_lite.profiles import get_profile
from glance_lite.teacher import load_teacher, normalize
from glance_lite.training import train

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REAL = ROOT.parent / "shared" / "data" / "real"
LAYERS = ("layer1", "layer2", "layer3", "layer4")


# ----------------------------------------------------------------------------- measure
def spread(n: int, k: int) -> torch.Tensor:
    """`k` indices spread evenly over range(n) (all of them when k >= n)."""
    return torch.from_numpy(np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(int)))


@torch.no_grad()
def pooled_layers(backbone, x: torch.Tensor, layers: tuple[str, ...] = LAYERS, batch: int = 64,
                  size: int | None = None) -> list[torch.Tensor]:
    """Images `(N,3,S,S)` in [0,1] (each batch resized bilinearly to `size` first, if given) ->
    each of `layers`, average-pooled, e.g. `[(N,64),...,(N,512)]`."""
    def resized(part: torch.Tensor) -> torch.Tensor:
        return part if size is None else F.interpolate(part, size=(size, size), mode="bilinear", align_corners=False)
    parts = [[f.mean((2, 3)) for f in resnet_features(backbone, resized(part), layers, len(part))]
             for part in x.split(batch)]
    return [torch.cat(layer) for layer in zip(*parts)]


def digits_probe(teacher, seed: int = 0) -> dict:
    """Linear-probe accuracy on sklearn's digits, per layer, and of the raw pixels (reference)."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    d = load_digits()
    x = torch.from_numpy(d.images / 16.0).float()[:, None].expand(-1, 3, -1, -1)
    x = F.interpolate(x, size=(teacher.input_size,) * 2, mode="bilinear", align_corners=False)
    feats = [f.numpy() for f in pooled_layers(teacher.backbone, x)]
    out = {}
    for name, f in [("pixels", d.data)] + list(zip(LAYERS, feats)):
        a, b, ya, yb = train_test_split(f, d.target, test_size=0.5, random_state=seed, stratify=d.target)
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1)).fit(a, ya)
        out[name] = round(float(clf.score(b, yb)), 4)
    return out


def scored(masks: torch.Tensor, labels: torch.Tensor, maps: torch.Tensor) -> dict:
    """PRO and image AUROC (maximum of the map) of maps `(N,256,256)`."""
    m = masks[:, 0].numpy() > 0.5
    return {"pro": round(au_pro(m, maps.numpy()), 4),
            "image_auroc": round(image_auroc(labels.numpy(), image_scores(maps.numpy())), 4)}


@torch.no_grad()
def patch_descriptors(teacher, images: torch.Tensor, grid: PatchGrid, chunk: int = 512) -> dict:
    """The teacher's average-pooled layer2..4 of every raster-grid patch, resized as `Teacher` does:
    images `(N,3,256,256)` -> {"2": `(N,K*K,128)`, "3": `(N,K*K,256)`, "4": `(N,K*K,512)`};
    "4" is R(p), the distillation target."""
    feats = pooled_layers(teacher.backbone, grid.patches(images).flatten(0, 1), LAYERS[1:], chunk, teacher.input_size)
    return {n[-1]: f.view(len(images), grid.n_patches, -1) for n, f in zip(LAYERS[1:], feats)}


@torch.no_grad()
def student_descriptors(model, images: torch.Tensor, grid: PatchGrid, chunk: int = 2048) -> torch.Tensor:
    """L(p) and D(L(p)) of every raster-grid patch -> `(N,K*K,128)`, `(N,K*K,512)`."""
    p = grid.patches(normalize(images)).flatten(0, 1)
    z = torch.cat([model.local_net(part) for part in p.split(chunk)])
    return z.view(len(images), grid.n_patches, -1), model.decoder(z).view(len(images), grid.n_patches, -1)


def nn_maps(train_f: torch.Tensor, test_f: torch.Tensor, grid: PatchGrid) -> torch.Tensor:
    """Nearest-bank-feature distance per patch, spread into maps by IDW `(N,256,256)`."""
    d = nearest_distances(test_f.flatten(0, 1), train_f.flatten(0, 1)).view(test_f.shape[:2])
    return idw_maps(d, grid)


def r2(target: torch.Tensor, pred: torch.Tensor) -> float:
    """Fraction of the target's total variance `(P,D)` that `pred` reproduces."""
    t = target.flatten(0, -2).double()
    return float(1 - (t - pred.flatten(0, -2).double()).pow(2).sum() / (t - t.mean(0)).pow(2).sum())


def measure_set(teacher_spec: str, teacher, root: Path, cat: str, args, work: Path) -> dict:
    """Every method above on one real development set (its subset) for one teacher."""
    tr, te = load_mvtec(root, cat, "train"), load_mvtec(root, cat, "test")
    keep = spread(len(te), args.test_images)
    xtr, xte = tr.images[spread(len(tr), args.train_images)], te.images[keep]
    masks, labels = te.masks[keep], te.labels[keep]
    out, t0 = {"n_train": len(xtr), "n_test": len(xte)}, time.perf_counter()
    for layers in [(name,) for name in LAYERS[:3]] + [LAYERS[:3]]:
        g = GaussianAD(teacher.backbone, dim=100, layers=layers, seed=args.seed).fit(xtr)
        maps = gaussian_smooth(g.raw_maps(xte), 4.0)  # the peer's sigma = 4 (mffa.py)
        out["gaussian@" + "+".join(n[-1] for n in layers)] = scored(masks, labels, maps)
    out["seconds_gaussian"] = round(time.perf_counter() - t0, 1)
    grid, t0 = PatchGrid(per_side=get_profile("cpu").grid_per_side), time.perf_counter()
    rtr, rte = patch_descriptors(teacher, xtr, grid), patch_descriptors(teacher, xte, grid)
    small = [F.adaptive_avg_pool2d(grid.patches(x).flatten(0, 1), 11).flatten(1).view(len(x), grid.n_patches, -1)
             for x in (xtr, xte)]  # no teacher at all: the patch's own pixels, 11x11x3
    out["pixels-nn"] = scored(masks, labels, nn_maps(*small, grid))
    for depth in rtr:
        out[f"teacher-nn@{depth}"] = scored(masks, labels, nn_maps(rtr[depth], rte[depth], grid))
    out["seconds_teacher_nn"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    run = train(xtr, cat, work / f"{cat}-local", profile="cpu", teacher=teacher_spec, seed=args.seed,
                overwrite=True, progress=False, until="finetune")
    model = load_local(run)
    ztr, _ = student_descriptors(model, xtr, grid)
    zte, dte = student_descriptors(model, xte, grid)
    out["local-only"] = scored(masks, labels, nn_maps(ztr, zte, grid))
    out["r2_student"] = round(r2(rte["4"][labels == 0], dte[labels == 0]), 4)
    out["seconds_local"] = round(time.perf_counter() - t0, 1)
    return out


def measure(args) -> None:
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    for spec in args.teachers:
        t0 = time.perf_counter()
        teacher = load_teacher(spec, get_profile("cpu").teacher_input, seed=args.seed)
        row = {"teacher": spec, "seed": args.seed, "probe_digits": digits_probe(teacher, args.seed)}
        print(spec, "probe", row["probe_digits"], flush=True)
        for cat in args.datasets:
            if not (Path(args.real) / cat).is_dir():  # the real sets are not shipped
                print(f"NOTE: skipping {cat}: no folder {Path(args.real) / cat} (pass --real)", flush=True)
                continue
            row[cat] = measure_set(spec, teacher, Path(args.real), cat, args, work)
            print(spec, cat, json.dumps(row[cat]), flush=True)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        row["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        with open(args.results, "a") as f:
            f.write(json.dumps(row) + "\n")


# ----------------------------------------------------------------------------- build
def offline_crops(n: int, size: int, seed: int) -> torch.Tensor:
    """`n` random 33x33 crops of scikit-learn's two photographs, resized to the teacher's input `size`."""
    g = torch.Generator().manual_seed(seed)
    crops = random_crops(distillation_images("sklearn"), n, 33, generator=g)
    return F.interpolate(crops, size=(size, size), mode="bilinear", align_corners=False)


@torch.no_grad()
def recalibrate_bn(net, images: torch.Tensor, batch: int = 256) -> None:
    """Set every BatchNorm's running mean / variance to the statistics of `images` (cumulative average)."""
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative: every batch counts the same
    net.train()
    for part in images.split(batch):
        net(normalize(part))
    for m in bns:
        m.momentum = 0.1
    net.eval()


def build(args) -> None:
    torch.set_num_threads(args.threads)
    teacher = load_teacher("random", get_profile("cpu").teacher_input, seed=args.seed)
    net = teacher.backbone
    if args.kind == "bn":
        recalibrate_bn(net, offline_crops(4096, teacher.input_size, args.seed))
    else:
        from deadleaves import train_contrastive  # benchmarks/deadleaves.py
        train_contrastive(net, minutes=args.minutes, size=teacher.input_size, seed=args.seed)
    state = {k: v for k, v in net.state_dict().items()}
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)  # loads as a ResNet-18
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, args.out)
    print(f"wrote {args.out}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("teachers", nargs="+")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--real", default=str(DEFAULT_REAL))
    m.add_argument("--datasets", nargs="+", default=["magnetic_tile", "mvtec3d_tire"])
    m.add_argument("--train-images", type=int, default=60)
    m.add_argument("--test-images", type=int, default=112)
    m.add_argument("--work", default=str(ROOT / "runs" / "teachers" / "work"))
    m.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "teacher.jsonl"))
    m.add_argument("--threads", type=int, default=2)
    b = sub.add_parser("build")
    b.add_argument("kind", choices=["bn", "deadleaves"])
    b.add_argument("out")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--minutes", type=float, default=25.0)
    b.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    measure(args) if args.cmd == "measure" else build(args)


if __name__ == "__main__":
    main()
