"""The whole method in one object: Local-Net + Global-Net + DAD head and the run's settings.

`Glance.anomaly_maps(images)` is the inference pipeline of Sec. 3.3 with the run's own profile
(grid, lambda_s, IDW power): exactly the maps `evaluate` computes. `load_model(run)` reads a
trained run back; `save_model` writes one (the safe checkpoint format of checkpoint.py).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from . import checkpoint
from .context_train import FeatureScaler
from .devices import amp_dtype_for
from .global_net import GlobalNet
from .heads import DADHead, ResidualBank, ResidualWhitener
from .image_score import PositionNorm
from .local_net import Decoder, LocalNet
from .patches import PatchGrid
from .profiles import Profile, get_profile, profile_from_config
from .scoring import PatchScores, head_scores, patch_features


class Glance(nn.Module):
    """Local-Net L, its decoder D (distillation only), Global-Net G and the DAD head C, with the
    `profile` they are trained and scored with (a name, a Profile, or None for the default)."""

    def __init__(self, profile: Profile | str | None = None, teacher_dim: int = 512):
        super().__init__()
        self.profile = get_profile(profile)
        self.config: dict = {"profile": self.profile.to_dict()}  # a trained run's config.json
        self.local_net = LocalNet()
        self.decoder = Decoder(teacher_dim=teacher_dim)
        self.global_net = GlobalNet(arch=self.profile.deviations.global_arch)
        self.head = DADHead()
        self.scaler = FeatureScaler()  # identity unless fitted (context_train.py)
        self.whitener = ResidualWhitener()  # identity (Eq. 11) unless fitted (heads.py)
        self.bank = ResidualBank()  # empty (Eq. 11) unless fitted (heads.py)
        self.image_norm = PositionNorm()  # empty (supp. D.1's max) unless fitted (image_score.py)

    @property
    def grid(self) -> PatchGrid:
        """The raster grid of Sec. 3.3 that this model scores on (the profile's K x K)."""
        return PatchGrid(per_side=self.profile.grid_per_side)

    def _batch_features(self, images: torch.Tensor, amp: str, batch_images: int = 8):
        """(scaled Z_l, Z_g) `(b, K*K, 128)` of images `(N,3,S,S)`, a few images at a time (bounded memory)."""
        self.eval()
        amp_dtype = amp_dtype_for(next(self.parameters()).device, amp)
        for i in range(0, len(images), batch_images):
            z_l, z_g = patch_features(self.local_net, self.global_net, images[i:i + batch_images],
                                      self.grid, self.profile.score_chunk, amp_dtype=amp_dtype)
            yield self.scaler(z_l), z_g

    def scores_and_features(self, images: torch.Tensor, amp: str = "auto", keep: torch.Tensor | None = None,
                            batch_images: int = 8) -> tuple[PatchScores, tuple[torch.Tensor, torch.Tensor]]:
        """PatchScores of images `(N,3,S,S)` and the features (scaled Z_l, Z_g) `(M, K*K, 128)` of the
        images where `keep` `(N,)` is True (evaluate's context check), in one pass."""
        keep = torch.zeros(len(images), dtype=torch.bool) if keep is None else keep
        out: dict[str, list] = {"s_iad": [], "s_dad": [], "z_l": [], "z_g": []}
        for i, (z_l, z_g) in zip(range(0, len(images), batch_images), self._batch_features(images, amp, batch_images)):
            s_iad, s_dad = head_scores(self.head, z_l, z_g, self.whitener, self.bank)
            k = keep[i:i + batch_images]
            for name, value in zip(out, (s_iad, s_dad, z_l[k], z_g[k])):
                out[name].append(value)
        cat = {name: torch.cat(values) for name, values in out.items()}
        norm = self.image_norm if self.profile.deviations.position_image_score else None  # else supp. D.1's max
        return PatchScores(cat["s_iad"], cat["s_dad"], self.grid, norm), (cat["z_l"], cat["z_g"])

    def score(self, images: torch.Tensor, amp: str = "auto") -> PatchScores:
        """Images `(N,3,256,256)` in [0,1] -> per-patch s_IAD and s_DAD `(N, K*K)` (Eq. 11-12).
        amp: "auto" | "bf16" | "fp16" | "off" (devices.amp_dtype_for)."""
        return self.scores_and_features(images, amp)[0]

    def features(self, images: torch.Tensor, amp: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
        """Images `(N,3,256,256)` -> (Z_l, Z_g) `(N, K*K, 128)` as the heads see them: Z_l
        standardised with the run's FeatureScaler when it was trained that way."""
        z_l, z_g = zip(*self._batch_features(images, amp))
        return torch.cat(z_l), torch.cat(z_g)

    def anomaly_maps(self, images: torch.Tensor, amp: str = "auto",
                     lambda_s: float | None = None) -> torch.Tensor:
        """Images `(N,3,256,256)` in [0,1] -> anomaly maps `(N,256,256)` (Eq. 13 + IDW), with the
        run's lambda_s unless given: the maps `evaluate` scores."""
        lambda_s = self.profile.lambda_s if lambda_s is None else lambda_s
        return self.score(images, amp).maps(lambda_s, self.profile.idw_power)

    def image_scores(self, images: torch.Tensor, amp: str = "auto",
                     lambda_s: float | None = None) -> torch.Tensor:
        """Images `(N,3,256,256)` in [0,1] -> image anomaly scores `(N,)` (higher: more likely
        defective): the run's image score (image_score.py); the maximum of the map (supp. D.1)
        where the profile does not use it (`position_image_score`) or the run has none fitted."""
        lambda_s = self.profile.lambda_s if lambda_s is None else lambda_s
        scores = self.score(images, amp)
        out = scores.image_scores(lambda_s)
        return scores.maps(lambda_s, self.profile.idw_power).flatten(1).amax(1) if out is None else out


def save_model(path: str | Path, model: Glance, config: dict) -> None:
    """Write a trained model and its run's config (config.json's content) to `path` (RUN/glance.pt)."""
    checkpoint.save(path, {"config": config, "phase": "done", "step": 0,
                           "models": {"glance": model.state_dict()}, "optim": None})


def _file(run: str | Path, name: str) -> Path:
    """RUN/name for a run folder, the path itself for a file."""
    run = Path(run)
    return run / name if run.is_dir() else run


def _load(run: str | Path, name: str, part: str, what: str) -> tuple[Glance, dict, Path]:
    """A Glance with the run's profile and config, and the checkpoint RUN/name that holds `part`."""
    path = _file(run, name)
    ckpt = checkpoint.load(path)
    if part not in ckpt.get("models", {}):
        raise checkpoint.CheckpointError(f"{path} holds no {what} (phase {ckpt.get('phase')!r})")
    model = Glance(profile_from_config(ckpt["config"]["profile"]))
    model.config = ckpt["config"]
    return model, ckpt["models"], path


def load_model(run: str | Path, device: str | torch.device = "cpu") -> Glance:
    """A trained model from a run folder (or its glance.pt) -> Glance in eval mode, with the
    run's profile (`model.profile`) and config.json (`model.config`)."""
    model, states, path = _load(run, "glance.pt", "glance", "trained Glance model")
    checkpoint.load_state(model, states["glance"], path, "Glance")
    return model.to(device).eval()


def load_local(run: str | Path, device: str | torch.device = "cpu") -> Glance:
    """Local-Net after pre-training from a run folder (or its local.pt; `train(...,
    until="finetune")`) -> a Glance model in eval mode whose Local-Net and decoder D are the
    trained ones. Its Global-Net and DAD head are untrained; use them only after `load_model`."""
    model, states, path = _load(run, "local.pt", "local_net", "pre-trained Local-Net")
    checkpoint.load_state(model.local_net, states["local_net"], path, "Local-Net")
    checkpoint.load_state(model.decoder, states["decoder"], path, "decoder")
    return model.to(device).eval()
