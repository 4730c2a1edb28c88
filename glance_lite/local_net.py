"""Local-Net L and its distillation decoder D (paper Sec. 3.1, supplementary Tab. 1).

Local-Net embeds one 33x33 RGB patch into a 128-d local feature Z_l (Eq. 4). It is a small
fully-convolutional network without padding, so it sees nothing outside the patch:

    (B,3,33,33) -Conv3x3,128-> 31 -MaxPool2-> 15 -Conv5x5,256-> 11 -MaxPool2-> 5
                -Conv2x2,256-> 4 -Conv4x4,128-> 1      (LeakyReLU(5e-3) after every conv)

Its receptive field is in fact 30x30, not 33x33: each 2x2 max-pool of an odd-sized map drops
the last row and column, so the bottom 3 rows and right 3 columns of the patch never reach Z_l.
This follows from Tab. 1 itself; chapter 2 of the book shows it with gradients.

The decoder D (Eq. 1) is a linear map from 128 to the teacher's descriptor size (512 for
ResNet-18) used only during distillation, so that L's output can be compared with R's.
"""
from __future__ import annotations

import torch
from torch import nn

from .patches import PATCH_SIZE  # the input side of Tab. 1

FEATURE_DIM = 128
LOCAL_SLOPE = 5e-3  # negative slope of every LeakyReLU in Tab. 1 of the supplementary


def _check_patches(x: torch.Tensor, size: int = PATCH_SIZE) -> None:
    if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] != size or x.shape[3] != size:
        raise ValueError(
            f"Local-Net expects patches of shape (B, 3, {size}, {size}); got {tuple(x.shape)}"
        )


class LocalNet(nn.Module):
    """Local-Net of supplementary Tab. 1: `(B,3,33,33)` patches -> `(B,128)` features Z_l."""

    def __init__(self, feature_dim: int = FEATURE_DIM):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 128, 3)
        self.lrelu1 = nn.LeakyReLU(LOCAL_SLOPE)
        self.pool1 = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(128, 256, 5)
        self.lrelu2 = nn.LeakyReLU(LOCAL_SLOPE)
        self.pool2 = nn.MaxPool2d(2, 2)
        self.conv3 = nn.Conv2d(256, 256, 2)
        self.lrelu3 = nn.LeakyReLU(LOCAL_SLOPE)
        self.conv4 = nn.Conv2d(256, feature_dim, 4)
        self.lrelu4 = nn.LeakyReLU(LOCAL_SLOPE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B,3,33,33) normalised patches -> (B,128)."""
        _check_patches(x)
        for layer in self.children():
            x = layer(x)
        return x.flatten(1)


class Decoder(nn.Module):
    """Decoder D of Eq. (1): a linear map `(B,128) -> (B,teacher_dim)`."""

    def __init__(self, feature_dim: int = FEATURE_DIM, teacher_dim: int = 512):
        super().__init__()
        self.fc = nn.Linear(feature_dim, teacher_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc(z)
