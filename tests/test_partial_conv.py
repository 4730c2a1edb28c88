"""Partial convolution (Eq. 5) against the formula by hand, and Global-Net's no-peeking property."""
import itertools

import pytest
import torch
import torch.nn.functional as F

from glance_lite import GlobalNet, PartialConv2d
from glance_lite.partial_conv import pool_mask


def _by_hand(x, mask, weight, bias, stride):
    """Eq. 5 evaluated location by location with Python loops (tiny inputs only)."""
    k = weight.shape[-1]
    h = (x.shape[-2] - k) // stride + 1
    w = (x.shape[-1] - k) // stride + 1
    out = torch.zeros(x.shape[0], weight.shape[0], h, w, dtype=x.dtype)
    new_mask = torch.zeros(x.shape[0], 1, h, w, dtype=x.dtype)
    for b, i, j in itertools.product(range(x.shape[0]), range(h), range(w)):
        xs = x[b, :, i * stride:i * stride + k, j * stride:j * stride + k]
        ms = mask[b, 0, i * stride:i * stride + k, j * stride:j * stride + k]
        if ms.sum() > 0:
            for o in range(weight.shape[0]):
                out[b, o, i, j] = (weight[o] * xs * ms).sum() * (k * k) / ms.sum() + bias[o]
            new_mask[b, 0, i, j] = 1
    return out, new_mask


@pytest.mark.parametrize("stride", [1, 2])
def test_partial_conv_equals_eq5_by_hand(stride):
    torch.manual_seed(0)
    conv = PartialConv2d(2, 3, 3, stride=stride).double()
    x = torch.randn(2, 2, 7, 7, dtype=torch.float64)
    mask = (torch.rand(2, 1, 7, 7) > 0.5).double()
    mask[0, 0, :4, :4] = 0  # a window with no valid pixel at all -> output 0, mask 0
    y, m = conv(x, mask)
    y_ref, m_ref = _by_hand(x, mask, conv.weight, conv.bias, stride)
    assert torch.allclose(y, y_ref, atol=1e-12)
    assert torch.equal(m, m_ref)
    assert m[0, 0, 0, 0] == 0 and (y[0, :, 0, 0] == 0).all()


def test_all_ones_mask_is_a_plain_convolution():
    torch.manual_seed(1)
    conv = PartialConv2d(3, 5, 3, stride=2).double()
    x = torch.randn(2, 3, 11, 11, dtype=torch.float64)
    y, m = conv(x, torch.ones(2, 1, 11, 11, dtype=torch.float64))
    assert torch.allclose(y, F.conv2d(x, conv.weight, conv.bias, stride=2), atol=1e-12)
    assert (m == 1).all()


def test_pooled_mask_is_binary_and_any_valid():
    m = torch.zeros(1, 1, 6, 6)
    m[0, 0, 0, 0] = 1
    pooled = pool_mask(m, 3, 2)
    assert pooled[0, 0, 0, 0] == 1 and pooled.sum() == 1 and set(pooled.unique().tolist()) <= {0.0, 1.0}


HOLES = [(0, 0), (0, 223), (223, 0), (223, 223), (111, 111), (5, 200), (230 - 33, 17)]


@pytest.mark.parametrize("arch", ["paper", "coords", "centred"])
@pytest.mark.parametrize("top,left", HOLES)
def test_global_net_cannot_peek(top, left, arch):
    """Any change of the pixels inside the hole leaves Z_g bit-identical (float64), for the
    paper's Global-Net and for ours with the hole's position."""
    torch.manual_seed(2)
    net = GlobalNet(arch=arch).double().eval()
    if arch != "paper":
        torch.nn.init.normal_(net.prior)
    image = torch.rand(1, 3, 256, 256, dtype=torch.float64)
    mask = torch.ones(1, 1, 256, 256, dtype=torch.float64)
    mask[..., top:top + 33, left:left + 33] = 0
    z = net(image, mask)
    for fill in (torch.rand(1, 3, 33, 33, dtype=torch.float64) * 100, torch.full((1, 3, 33, 33), -1e6, dtype=torch.float64)):
        other = image.clone()
        other[..., top:top + 33, left:left + 33] = fill
        assert torch.equal(net(other, mask), z)
    # even NaN in the hole cannot leak
    other = image.clone()
    other[..., top:top + 33, left:left + 33] = float("nan")
    assert torch.equal(net(other, mask), z)
    # ...while one pixel just outside the hole does change Z_g (so this test can fail)
    r = top + 33 if top + 33 < 256 else top - 1
    outside = image.clone()
    outside[..., r, left] += 1.0
    assert not torch.equal(net(outside, mask), z)


def test_plan_path_equals_direct_path():
    torch.manual_seed(3)
    net = GlobalNet().eval()
    mask = torch.ones(3, 1, 256, 256)
    for i, (t, l) in enumerate(HOLES[:3]):
        mask[i, :, t:t + 33, l:l + 33] = 0
    image = torch.rand(3, 3, 256, 256)
    assert torch.equal(net(image, mask), net(image, mask, GlobalNet.mask_plan(mask)))


@pytest.mark.parametrize("hole", [False, True])
def test_full_windows_take_the_plain_convolution_with_the_same_numbers(hole):
    """A mask with no hole in any window (layers 2_1 on, for a 33x33 hole) skips the masking;
    the result is the same as the masked computation, and a hole still takes the masked path."""
    from glance_lite.partial_conv import MaskStep, mask_step
    torch.manual_seed(0)
    conv = PartialConv2d(4, 5, 3, stride=1)
    x = torch.randn(2, 4, 9, 9)
    mask = torch.ones(2, 1, 9, 9)
    if hole:
        mask[:, :, 3:5, 3:5] = 0
    step = mask_step(mask, 3, 1)
    assert step.full() == (not hole)
    y, m = conv(x, mask, step)
    masked = MaskStep(step.scale, step.mask, _full=False)  # force Eq. 5's masked formula
    y_ref, m_ref = conv(x, mask, masked)
    assert torch.equal(m, m_ref) and torch.allclose(y, y_ref, atol=1e-6, rtol=0)
    if not hole:
        assert torch.allclose(y, F.conv2d(x, conv.weight, conv.bias), atol=1e-6, rtol=0)
