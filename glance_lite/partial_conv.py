"""Partial convolution (paper Eq. 5, after Liu et al. 2018) and the matching mask pooling.

A partial convolution sees only the valid pixels of its input. At every output location,
with X the input window, M the (single-channel, shared by all channels) binary mask window
and k*k the window size:

    x' = W^T (X * M) * (k*k / sum(M)) + b     if sum(M) > 0
    x' = 0                                    otherwise                         (Eq. 5)

and the mask passed to the next layer is m' = [sum(M) > 0]. At a pooling layer the features are
pooled as usual and the mask becomes the binarised pooled mask (Sec. 3.1); for max pooling of a
{0,1} mask this is simply the max-pooled mask.

Everything that depends only on the mask (sum(M), the rescaling factor, the new mask) can be
computed once per hole geometry and reused for every image: `mask_step` returns it as a
`MaskStep`, and `PartialConv2d.forward` accepts one to skip recomputation (the fast scoring
path in `scoring.py` relies on this).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class MaskStep:
    """The mask-only part of one partial convolution.

    scale: (B|1, 1, h, w) = k*k/sum(M) where sum(M) > 0, else 0.
    mask:  (B|1, 1, h, w) = [sum(M) > 0], the mask handed to the next layer.
    """

    scale: torch.Tensor
    mask: torch.Tensor
    _full: bool | None = None

    def full(self) -> bool:
        """Every window entirely valid (scale 1 everywhere)? Then Eq. 5 is a plain convolution.

        For a 33x33 hole this holds from layer 2_1 of supp. Tab. 2 on; skipping the masking
        there makes a Global-Net step cheaper (same numbers; tests/test_partial_conv.py)."""
        if self._full is None:
            self._full = bool((self.scale == 1).all())
        return self._full


def mask_step(mask: torch.Tensor, kernel_size: int, stride: int = 1) -> MaskStep:
    """Mask bookkeeping of Eq. 5 for a `(B,1,H,W)` binary mask and a k x k window."""
    ones = mask.new_ones(1, 1, kernel_size, kernel_size)
    valid = F.conv2d(mask, ones, stride=stride)  # sum(M) in each window
    new_mask = (valid > 0).to(mask.dtype)
    # a true division (a Python number over a tensor would multiply by a rounded reciprocal,
    # so a full window would not get a scale of exactly 1)
    scale = torch.div(valid.new_full((), kernel_size * kernel_size), valid.clamp(min=1.0)) * new_mask
    return MaskStep(scale=scale, mask=new_mask)


def pool_mask(mask: torch.Tensor, kernel_size: int, stride: int) -> torch.Tensor:
    """Binarised pooled mask (Sec. 3.1): a pooled location is valid if any input was."""
    return F.max_pool2d(mask, kernel_size, stride)


class PartialConv2d(nn.Conv2d):
    """Eq. 5 as a drop-in `nn.Conv2d` (square kernel, no padding, no dilation, no groups).

    forward(x, mask) with x (B,C,H,W) and mask (B|1,1,H,W) in {0,1} returns (y, new_mask):
    y (B,C',h,w) and new_mask (B|1,1,h,w). Pixels under mask 0 never influence y: they are
    zeroed before the convolution (selected away with `torch.where`, so even NaN or inf there
    cannot leak).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, bias=bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor,  # type: ignore[override]
                step: MaskStep | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[-2:] != x.shape[-2:]:
            raise ValueError(
                f"partial convolution expects a single-channel mask (B,1,{x.shape[-2]},"
                f"{x.shape[-1]}) for input {tuple(x.shape)}; got {tuple(mask.shape)}"
            )
        if step is None:
            step = mask_step(mask, self.kernel_size[0], self.stride[0])
        if step.full():  # no hole pixel in any window: x' = W^T X + b exactly
            y = F.conv2d(x, self.weight, None, self.stride)
            return (y + self.bias.view(1, -1, 1, 1) if self.bias is not None else y), step.mask
        x = torch.where(mask == 0, 0.0, x)  # unlike masked_fill, keeps a channels_last layout
        y = F.conv2d(x, self.weight, None, self.stride)
        y = y * step.scale.to(y.dtype)
        if self.bias is not None:
            # = y + b * mask (y is 0 where the mask is 0), written so that a channels_last y
            # stays channels_last
            y = (y + self.bias.view(1, -1, 1, 1)) * step.mask.to(y.dtype)
        return y, step.mask
