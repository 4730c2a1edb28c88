"""Stopping Global-Net's training when it stops learning (our deviation from supp. Sec. C.1;
docs/deviations.md#early-stopping).

The paper trains Global-Net for a fixed number of steps. In the short profiles the step count
is a ceiling instead: a few of the category's normal training images are held back (never
trained on, nor used to fit the scaler or the position prior), and every `stop_check_every`
steps Global-Net predicts Z_l at a lattice of holes in them. The phase ends when that R^2
(diagnostics.r2, in the scaler's units) has not risen by `stop_min_delta` for `stop_patience`
checks in a row, at whatever learning rate the cosine schedule has reached (a cool-down of the
rate to 0 before stopping did not help: fabric PRO 0.899 with it, 0.897 without, 0.902 after
all steps; docs/deviations.md#early-stopping). The checks count from step `start`: the end of
the warm-up and of the
hard-holes weighting (`Deviations.hard_holes_until`), because before that the loss is not the
plain mean error that R^2 measures. (Fabric's Global-Net sits on a plateau of that plain error
for a few hundred steps and leaves it because of the weighting, docs/deviations.md#hard_holes.)
Why R^2 and not the loss: Eq. (10)'s value changes meaning with the hard-holes weighting and
the DAD term, while R^2 on unseen images is what the chapter-4 diagnostic asks of Global-Net
(does it read the context?).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .context_train import lattice, local_targets
from .diagnostics import r2
from .fast_global import features_at, hole_free_front, window_side
from .patches import PATCH_SIZE
from .teacher import normalize

CHECK_STRIDE = 16  # px between the checked holes' corners: 13 x 13 holes per 256x256 image


def holdout_split(n: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (trained, held back) of n training images, k held back evenly spaced -> two `(.)`
    tensors. k = 0, or fewer than 4k images, holds none back (too few to spare)."""
    if k <= 0 or n < 4 * k:
        return torch.arange(n), torch.arange(0)
    held = torch.linspace(0, n - 1, k + 2)[1:-1].round().long()  # neither the first nor the last
    keep = torch.ones(n, dtype=torch.bool)
    keep[held] = False
    return torch.arange(n)[keep], held


class HoldoutCheck:
    """R^2 of Global-Net on held-back normal images, and the stopping rule (module docstring).

    images: the held-back images `(k,3,S,S)` in [0,1]; model: the Glance being trained (its
    Local-Net frozen and its scaler fitted, as after `training.prepare_context`).
    """

    def __init__(self, model: nn.Module, images: torch.Tensor, every: int, patience: int,
                 min_delta: float, device: torch.device, start: int = 0, chunk: int = 128):
        self.every, self.patience, self.min_delta, self.start, self.chunk = every, patience, min_delta, start, chunk
        self.positions = lattice(images.shape[-1], PATCH_SIZE, CHECK_STRIDE)  # (P,2)
        p = len(self.positions)
        self.images = normalize(images.to(device))
        self.img_idx = torch.arange(len(images), device=device).repeat_interleave(p)
        self.top_left = self.positions.repeat(len(images), 1).to(device)
        self.targets = model.scaler(local_targets(model.local_net, images, self.positions).float()
                                    .to(device)).view(-1, model.scaler.mean.shape[0])
        self.best, self.best_step, self.history, self.stopped = -math.inf, 0, [], None  # step it stopped at
        self.position_mean = math.nan  # R^2 of the position mean on the checked holes, for the record
        self.held: list[int] = []      # the held-back images' indices among the training images, for the record

    @torch.no_grad()
    def measure(self, model: nn.Module) -> float:
        """R^2 of Z_g against the scaled Z_l at every checked hole of the held-back images."""
        net = model.global_net
        base = hole_free_front(net, self.images)
        pred = torch.cat([features_at(net, self.images, base, self.img_idx[i], self.top_left[i], PATCH_SIZE,
                                      window_side(PATCH_SIZE))
                          for i in torch.arange(len(self.img_idx), device=self.images.device).split(self.chunk)])
        return r2(pred, self.targets)

    def due(self, step: int) -> bool:
        """Is step `step` (1-based, just completed) a checking step?"""
        return self.every > 0 and step % self.every == 0

    def update(self, step: int, value: float) -> None:
        """Record the R^2 measured after `step` steps; the phase stops when it stopped rising."""
        self.history.append([step, round(value, 5)])
        if value > self.best + self.min_delta:
            self.best, self.best_step = value, step
        if step - max(self.best_step, self.start) >= self.patience * self.every:
            self.stopped = step

    def end(self, ceiling: int) -> int:
        """The step the phase ends at: the ceiling, or where the rule stopped it."""
        return ceiling if self.stopped is None else self.stopped

    def state_dict(self) -> dict:
        return {"best": self.best, "best_step": self.best_step, "history": self.history, "stopped": self.stopped}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_step = state["best"], state["best_step"]
        self.history, self.stopped = list(state["history"]), state["stopped"]

    def position_mean_r2(self, model: nn.Module, train_targets: torch.Tensor,
                         train_positions: torch.Tensor) -> float:
        """R^2 of the trivial predictor (the trained images' mean Z_l at the same position) on the
        checked holes, for comparison. train_targets `(N,P',128)` unscaled, at `train_positions`
        `(P',2)`, which hold the checked positions (a lattice stride dividing CHECK_STRIDE)."""
        match = (train_positions[None] == self.positions[:, None]).all(-1)  # (P, P')
        if not bool(match.any(1).all()):
            return math.nan
        mean = model.scaler(train_targets.float().mean(0)[match.float().argmax(1)])  # (P,128)
        return r2(mean.to(self.targets.device).repeat(len(self.images), 1), self.targets)

    def record(self, ceiling: int) -> dict:
        """What config.json says of the checks: the held-back image indices, every check's R^2,
        the position mean's and the phase's last step (`stopped`: True when the rule ended it)."""
        return {"held_back": self.held, "r2_position_mean": round(self.position_mean, 4),
                "checks": self.history, "steps": self.end(ceiling), "stopped": self.stopped is not None}


def holdout_check(model: nn.Module, images: torch.Tensor, held: torch.Tensor, prof, device: torch.device,
                  ctx: dict | None = None, state: dict | None = None) -> HoldoutCheck:
    """The check of a Global-Net phase with Profile `prof` on held-back images `(k,3,S,S)`: checks
    count from the end of the warm-up and the hard-holes weighting. ctx: the phase's context
    targets (`training.prepare_context`), for the position mean's R^2; state: a checkpoint's
    `HoldoutCheck.state_dict()` when the phase resumes. held: the images' indices, for the record."""
    dev = prof.deviations
    start = round(max(dev.lr_warmup, dev.hard_holes_until if dev.hard_holes_gamma else 0) * prof.train_steps)
    check = HoldoutCheck(model, images, prof.stop_check_every, prof.stop_patience, prof.stop_min_delta, device, start)
    check.held = held.tolist()
    if state:
        check.load_state_dict(state)
    if ctx is not None:
        check.position_mean = check.position_mean_r2(model, ctx["targets"], ctx["positions"])
    return check
