"""MFFA-lite: the MFFA baseline's PSG, NNS, Gaussian and AMC blocks, on the ResNet-18 teacher.

MFFA's pipeline (MFFA Fig. 1) in four blocks, one file each:

    psg.py       PSG: fine-tune the backbone on normal / CutPaste / CutPaste-Scar (Sec. 3, PSG)
    nns.py       NNS: coreset memory bank of layer2+layer3 features, nearest-neighbour map
    gaussian.py  Gaussian: per-position Gaussians of layer1..3 features, Mahalanobis map
    amc.py       AMC: product of the two normalised maps, Gaussian smoothing sigma = 4

What is different from the paper ("lite"):
  * backbone: the torchvision ResNet-18 that Glance distils from (teacher.py: ImageNet weights,
    or an untrained net with --teacher random), not WideResNet-50; so NNS features are
    128+256 = 384-d and the Gaussian branch selects 100 of 448 dimensions (PaDiM's choice for
    ResNet-18) instead of MFFA's 570;
  * PSG runs for a few steps per profile (SETTINGS below) instead of 64 epochs;
  * LGFFP, the block that feeds the fused features through the first 11 transformer blocks
    of a pre-trained CaiT (MFFA Sec. 3, Fig. 3), is left out: it needs ImageNet-trained
    CaiT weights, which cannot be downloaded here (and a randomly initialised transformer
    would only add noise). MFFA's Table 2 ablates it, so NNS + Gaussian + PSG is a configuration of the
    paper's own ablation.
  * the single NNS and Gaussian maps are smoothed with the same sigma = 4 filter as the AMC
    map (PatchCore and PaDiM do so too), so the three rows of a comparison differ only in
    the scoring rule.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .amc import SIGMA, MinMax, amc
from .common import DEFAULT_MAX_BYTES, gaussian_smooth
from .gaussian import LAMBDA, GaussianAD
from .nns import NNS
from .psg import psg_finetune


@dataclass(frozen=True)
class MFFAConfig:
    """Sizes of MFFA-lite; MFFA Sec. 4 (details) gives lr 3e-4, coreset ratio 0.01, lambda 0.01, sigma 4."""

    psg_steps: int = 20             # PSG fine-tuning steps (each: psg_batch images per class)
    psg_batch: int = 8
    psg_lr: float = 3e-4
    coreset_ratio: float = 0.01
    proj_dim: int = 128             # random projection used only to select the coreset
    gauss_dim: int = 100            # random feature selection of the Gaussian branch
    lam: float = LAMBDA
    sigma: float = SIGMA
    val_fraction: float = 0.1      # training images held out for the AMC normalisation statistics
    max_bank_bytes: int = DEFAULT_MAX_BYTES
    batch: int = 8                  # images per backbone forward pass

    def to_dict(self) -> dict:
        return asdict(self)


SETTINGS = {
    "smoke": MFFAConfig(psg_steps=2, psg_batch=2, batch=4),
    "cpu": MFFAConfig(psg_steps=20, psg_batch=8),
    "colab": MFFAConfig(psg_steps=500, psg_batch=32, batch=32),
    "paper": MFFAConfig(psg_steps=3000, psg_batch=32, batch=32),
}


def settings_for(profile_name: str) -> MFFAConfig:
    """The MFFA-lite sizes for a profile name (the cpu ones for unknown names)."""
    return SETTINGS.get(profile_name, SETTINGS["cpu"])


class MFFALite:
    """PSG-fine-tuned backbone -> NNS and Gaussian maps -> AMC map."""

    def __init__(self, backbone: nn.Module, config: MFFAConfig = MFFAConfig(), seed: int = 0,
                 device: torch.device | str = "cpu"):
        self.source, self.cfg, self.seed, self.device = backbone, config, seed, torch.device(device)
        self.psg_losses: list[float] = []
        self.fit_seconds: dict[str, float] = {}
        c = config
        self.nns = NNS(backbone.to(self.device), c.coreset_ratio, c.proj_dim, c.max_bank_bytes, seed, c.batch)
        self.gauss = GaussianAD(backbone, c.gauss_dim, c.lam, max_bank_bytes=c.max_bank_bytes, seed=seed,
                                batch=c.batch)

    def check_memory(self, n_images: int, image_size: int = 256) -> None:
        """ValueError (before anything is built) if the NNS or Gaussian bank of `n_images` training
        images would exceed `config.max_bank_bytes`."""
        self.nns.bank_bytes(n_images, image_size)
        self.gauss.bank_bytes(n_images, image_size)

    def fit(self, train_images: torch.Tensor) -> "MFFALite":
        """PSG fine-tuning, coreset bank, per-position Gaussians and AMC statistics from `(N,3,256,256)`."""
        c, t0 = self.cfg, time.perf_counter()
        self.check_memory(len(train_images), train_images.shape[-1])  # fail before minutes of fine-tuning
        net = psg_finetune(self.source, train_images, c.psg_steps, c.psg_batch, c.psg_lr, self.seed,
                           self.device, log=self.psg_losses)
        self.nns.backbone = self.gauss.backbone = net
        t1 = time.perf_counter()
        self._amc_statistics(train_images)
        t2 = time.perf_counter()
        self.nns.fit(train_images)
        t3 = time.perf_counter()
        self.gauss.fit(train_images)
        self.fit_seconds = {"psg": t1 - t0, "amc_stats": t2 - t1, "nns": t3 - t2,
                            "gaussian": time.perf_counter() - t3}
        return self

    def _amc_statistics(self, train_images: torch.Tensor) -> None:
        """MinMax statistics for AMC from maps of held-out training images (amc.py).

        The last `val_fraction` of the training images (at least one) is scored by NNS and
        Gaussian models fitted on the others, so the statistics describe unseen normal images
        (in-sample distances are too small: a coreset point has distance 0 to itself). The final
        models are then refitted on all training images. With a single training image the
        statistics are in-sample.
        """
        n_val = max(1, round(self.cfg.val_fraction * len(train_images)))
        fit, val = train_images[:-n_val], train_images[-n_val:]
        if len(fit) == 0:
            fit = val
        self.nns.fit(fit)
        self.gauss.fit(fit)
        self.nns_norm = MinMax.fit(self.nns.raw_maps(val))
        self.gauss_norm = MinMax.fit(self.gauss.raw_maps(val))

    def anomaly_maps(self, images: torch.Tensor, method: str = "amc") -> torch.Tensor:
        """Test images `(N,3,256,256)` -> the maps `(N,256,256)` of one branch: "nns", "gaussian"
        or "amc" (MFFA's combined map)."""
        if method not in ("nns", "gaussian", "amc"):
            raise ValueError(f"unknown MFFA-lite method {method!r}; expected nns, gaussian or amc")
        return self.timed_maps(images)[0][method]

    def timed_maps(self, images: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Test images `(N,3,256,256)` -> ({"nns","gaussian","amc"}: maps `(N,256,256)`, seconds each).

        The AMC time is the NNS time + the Gaussian time + the product and smoothing.
        """
        t0 = time.perf_counter()
        nns_raw = self.nns.raw_maps(images)
        t1 = time.perf_counter()
        g_raw = self.gauss.raw_maps(images)
        t2 = time.perf_counter()
        nns_map = gaussian_smooth(nns_raw, self.cfg.sigma)
        t3 = time.perf_counter()
        g_map = gaussian_smooth(g_raw, self.cfg.sigma)
        t4 = time.perf_counter()
        final = amc(nns_raw, g_raw, self.nns_norm, self.gauss_norm, self.cfg.sigma)
        t5 = time.perf_counter()
        maps = {"nns": nns_map, "gaussian": g_map, "amc": final}
        secs = {"nns": (t1 - t0) + (t3 - t2), "gaussian": (t2 - t1) + (t4 - t3),
                "amc": (t2 - t0) + (t5 - t4)}
        return maps, secs
