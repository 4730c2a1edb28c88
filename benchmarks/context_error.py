"""Where does Global-Net's error on normal patches come from? (synthetic categories)

    python benchmarks/context_error.py RUN_DIR --category fabric

RUN_DIR is a finished run (RUN/glance.pt, e.g. runs/accuracy/cpu-coords/fabric/seed0/glance_run).
Draws fresh normal images with the synthetic generator and prints:

* the **noise ceiling** of R^2: each image is rendered twice with the same layout and lighting
  and different pixel noise; the best any predictor can do is E[Z_l | clean image], so
  R^2_max ~= 1 - Var_noise / Var(Z_l), Var_noise = E||Z_l(a) - Z_l(b)||^2 / 2 (standardised Z_l);
* Global-Net's R^2 on the same patches and its MSE in units of that noise variance;
* for `fabric`: Global-Net's MSE by the distance from the patch centre to the nearest dot, each
  distance band's share of the total error, and the two scores there (s_IAD as the model scores
  it, Eq. 11 with our options; s_DAD, Eq. 12): where a normal patch scores high, maps light up;
* for `fabric`: whether Global-Net follows what the context says. Each image is redrawn with one
  property changed (the dots' ink; the lattice moved by 24 px or 4 px) and, on the patches within
  12 px of a dot, we report how much of Local-Net's change dZ_l Global-Net reproduces:
  1 - |dZ_g - dZ_l|^2 / |dZ_l|^2 (1: it follows; 0: it ignores the change), and how large that
  change is against Global-Net's own error there;
* for `fabric`: whether the dots' ink can be read at all (a linear probe, cross-validated by
  image) from Z_l, from Z_g, and from Global-Net's layer 1_2 at the dots.

Measured on the benchmark's fabric model (cpu profile, seed 0): ceiling 0.999, MSE 1.40 with a
dot within 4 px of the centre against 0.02 beyond 20 px; mean s_DAD 0.54-0.58 within 16 px of a
dot against 0.17-0.19 beyond 20 px; Global-Net follows a 24 px move of the lattice (0.71) but
hardly the ink (0.09); the seed-1 model, stuck at half the loss, follows neither (0.03, 0.03)
(README, "Why, measured" and "The DAD head"). The `centred` seed-1 model of the current table:
R^2 0.843, lattice +24 px 0.79, ink 0.05, although the ink's |dZ_l|^2 near a dot (97) exceeds
Global-Net's whole error there (75); the probe reads the ink from Z_l (0.91) but hardly from Z_g
(0.53) or from layer 1_2 (0.43; the same probe on an untrained Global-Net's layer 1_2: 0.86-0.95,
with 24 images: training *removed* most of the colour from Global-Net's front).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_score

from glance_lite.data import synthetic as S
from glance_lite.fast_global import hole_free_front
from glance_lite.global_net import L12_CENTRE, L12_STRIDE
from glance_lite.heads import dad_score, iad_score
from glance_lite.model import load_model
from glance_lite.patches import PatchGrid
from glance_lite.scoring import patch_features
from glance_lite.teacher import normalize

BANDS = [(0, 4), (4, 8), (8, 12), (12, 16), (16, 20), (20, 24), (24, 64)]


def render_pair(category: str, rng: np.random.Generator, cv: "S.Canvas") -> tuple[np.ndarray, np.ndarray, dict]:
    """One normal layout drawn twice with the same lighting and different noise -> (a, b, params)."""
    sample, draw, _, _ = S._RENDER[category]
    p = sample(rng)
    img = draw(p, cv)
    gain = rng.uniform(0.92, 1.08) * rng.uniform(0.97, 1.03, size=3)  # as in synthetic.render
    a, b = (np.round(np.clip(img * gain + rng.normal(0.0, 0.02, img.shape), 0, 1) * 255) / 255 for _ in range(2))
    return a, b, p


def dot_distance(p: dict, grid: PatchGrid) -> np.ndarray:
    """Distance in px from each patch centre `(K*K,)` to the nearest dot of fabric layout p."""
    centres = grid.centres.numpy()[:, ::-1]                          # (x, y) of every patch centre
    dots = np.array([(x, y) for x, y, _, _ in S._fabric_dots(p)])
    return np.sqrt(((centres[:, None] - dots[None]) ** 2).sum(-1)).min(1)


CHANGES = {"ink": lambda p: dict(p, ink=(p["ink"] + 1) % 3),
           "lattice +24 px": lambda p: dict(p, ox=(p["ox"] + 24) % S._PERIOD),
           "lattice +4 px": lambda p: dict(p, ox=(p["ox"] + 4) % S._PERIOD)}


def follows(model, layouts: list[dict], change, grid: PatchGrid, cv: "S.Canvas") -> tuple[float, float, float]:
    """Share of Local-Net's change that Global-Net reproduces when `change` is applied to every
    fabric layout (noise-free drawings), on patches within 12 px of a dot before or after; and,
    on the same patches, the mean squared size of that change |dZ_l|^2 and Global-Net's own
    squared error |Z_l - Z_g|^2 on the unchanged drawings (standardised units, summed over the
    128 dimensions): how much a Global-Net that ignores the change loses, against what it
    already gets wrong there."""
    def feats(ps):
        imgs = torch.tensor(np.stack([S._fabric_draw(p, cv) for p in ps])).permute(0, 3, 1, 2).float().clamp(0, 1)
        zl, zg = patch_features(model.local_net, model.global_net, imgs, grid)
        return model.scaler(zl).flatten(0, 1), zg.flatten(0, 1)
    moved = [change(p) for p in layouts]
    (al, ag), (bl, bg) = feats(layouts), feats(moved)
    near = torch.from_numpy(np.concatenate([np.minimum(dot_distance(p, grid), dot_distance(q, grid))
                                            for p, q in zip(layouts, moved)]) < 12)
    dl, dg = (bl - al)[near], (bg - ag)[near]
    err = (al - ag)[near].pow(2).sum(1).mean().item()
    return 1.0 - ((dg - dl).pow(2).sum() / dl.pow(2).sum()).item(), dl.pow(2).sum(1).mean().item(), err


def probe(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> float:
    """Accuracy of a linear classifier of y from x `(M, D)`, cross-validated by image (`groups`)."""
    folds = min(4, len(set(groups.tolist())))
    return float(cross_val_score(LogisticRegression(max_iter=3000), x, y, cv=GroupKFold(folds), groups=groups).mean())


@torch.no_grad()
def ink_probes(model, layouts: list[dict], grid: PatchGrid, cv: "S.Canvas") -> dict:
    """Can a linear classifier read the dots' ink (3 classes, chance 1/3) from Z_l and Z_g of the
    patches within 8 px of a dot, and from Global-Net's layer 1_2 map at the dots' locations?
    (noise-free drawings; cross-validated by image)"""
    imgs = torch.tensor(np.stack([S._fabric_draw(p, cv) for p in layouts])).permute(0, 3, 1, 2).float().clamp(0, 1)
    zl, zg = patch_features(model.local_net, model.global_net, imgs, grid)
    near = np.concatenate([dot_distance(p, grid) for p in layouts]) < 8
    ink = np.repeat([p["ink"] for p in layouts], grid.n_patches)[near]
    img = np.repeat(np.arange(len(layouts)), grid.n_patches)[near]
    front = hole_free_front(model.global_net, normalize(imgs))         # (N, 32, 28, 28)
    rows = [(i, round((y - L12_CENTRE) / L12_STRIDE), round((x - L12_CENTRE) / L12_STRIDE), p["ink"])
            for i, p in enumerate(layouts) for x, y, _, _ in S._fabric_dots(p)]
    rows = np.array([r for r in rows if 0 <= r[1] < front.shape[-1] and 0 <= r[2] < front.shape[-1]])
    return {"Z_l": probe(model.scaler(zl).flatten(0, 1).numpy()[near], ink, img),
            "Z_g": probe(zg.flatten(0, 1).numpy()[near], ink, img),
            "layer 1_2": probe(front[rows[:, 0], :, rows[:, 1], rows[:, 2]].numpy(), rows[:, 3], rows[:, 0])}


@torch.no_grad()  # a local switch: main() also runs inside the test process
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--category", required=True, choices=list(S._RENDER))
    ap.add_argument("--images", type=int, default=10)
    ap.add_argument("--seed", type=int, default=12)
    args = ap.parse_args(argv)
    model, _ = load_model(args.run / "glance.pt")
    grid, cv, rng = PatchGrid(per_side=20), S.Canvas(256), np.random.default_rng(args.seed)
    pairs = [render_pair(args.category, rng, cv) for _ in range(args.images)]
    t = lambda imgs: torch.tensor(np.stack(imgs)).permute(0, 3, 1, 2).float()  # noqa: E731
    za, zg = patch_features(model.local_net, model.global_net, t([a for a, _, _ in pairs]), grid)
    zb, _ = patch_features(model.local_net, model.global_net, t([b for _, b, _ in pairs]), grid)
    za, zb, zg = model.scaler(za).flatten(0, 1), model.scaler(zb).flatten(0, 1), zg.flatten(0, 1)
    var = za.var(0).sum().item()
    noise = 0.5 * (za - zb).pow(2).mean(0).sum().item()
    err = (za - zg).pow(2).mean(1)                                   # per patch
    s_iad = iad_score(za, zg, model.whitener, model.bank).numpy()
    s_dad = dad_score(model.head, za, zg).numpy()
    print(f"{args.category}: R^2 noise ceiling {1 - noise / var:.3f}; Global-Net R^2 {1 - err.mean().item() * 128 / var:.3f}; "
          f"Global-Net MSE / noise variance {err.mean().item() * 128 / noise:.1f}")
    if args.category == "fabric":
        dist = np.concatenate([dot_distance(p, grid) for _, _, p in pairs])
        e = err.numpy()
        print("distance to the nearest dot | patches | MSE | share of the error | mean s_IAD | mean s_DAD")
        for lo, hi in BANDS:
            s = (dist >= lo) & (dist < hi)
            if s.any():
                print(f"{lo:2d}-{hi:2d} px | {s.sum():5d} | {e[s].mean():.3f} | {e[s].sum() / e.sum():.2f} | "
                      f"{s_iad[s].mean():.3f} | {s_dad[s].mean():.3f}")
        layouts = [p for _, _, p in pairs[:6]]
        res = {name: follows(model, layouts, ch, grid, cv) for name, ch in CHANGES.items()}
        print("Global-Net follows the context (share of dZ_l reproduced, patches near a dot): "
              + ", ".join(f"{name} {f:.2f}" for name, (f, _, _) in res.items()))
        print("size of that change |dZ_l|^2 against Global-Net's error |Z_l - Z_g|^2 there: "
              + ", ".join(f"{name} {d:.1f} vs {e:.1f}" for name, (_, d, e) in res.items()))
        probes = ink_probes(model, [S._fabric_sample(rng) for _ in range(max(args.images, 8))], grid, cv)
        print("ink read by a linear probe (accuracy, chance 0.33): "
              + ", ".join(f"{name} {acc:.2f}" for name, acc in probes.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
