"""Layer-by-layer output sizes equal supplementary Tabs. 1-3; bad shapes are refused."""
import pytest
import torch

from glance_lite import DADHead, GlobalNet, LocalNet
from glance_lite.summary import format_table, layer_table

# (layer, H, W, C) copied from the supplementary's tables
TAB1 = [("Input", 33, 33, 3), ("conv1", 31, 31, 128), ("lrelu1", 31, 31, 128), ("pool1", 15, 15, 128),
        ("conv2", 11, 11, 256), ("lrelu2", 11, 11, 256), ("pool2", 5, 5, 256), ("conv3", 4, 4, 256),
        ("lrelu3", 4, 4, 256), ("conv4", 1, 1, 128), ("lrelu4", 1, 1, 128)]
TAB2 = [("Input", 256, 256, 3), ("pconv0", 125, 125, 16), ("relu0", 125, 125, 16), ("pool0", 62, 62, 16),
        ("pconv1_1", 30, 30, 32), ("relu", 30, 30, 32), ("pconv1_2", 28, 28, 32), ("relu", 28, 28, 32),
        ("pconv2_1", 13, 13, 64), ("relu", 13, 13, 64), ("pconv2_2", 11, 11, 64), ("relu", 11, 11, 64),
        ("pconv3_1", 5, 5, 128), ("relu", 5, 5, 128), ("pconv3_2", 3, 3, 128), ("relu", 3, 3, 128),
        ("pconv4", 1, 1, 128)]
TAB3 = [("Input", 256), ("fc0", 128), ("lrelu0", 128), ("fc1", 2), ("lrelu1", 2)]


def _hwc(rows):
    return [(n, s[1], s[2], s[0]) for n, s in rows]


def test_local_net_matches_tab1():
    rows = layer_table(LocalNet(), torch.randn(2, 3, 33, 33))
    assert _hwc(rows) == TAB1
    assert "conv4           1x1x128" in format_table(rows)


def test_global_net_matches_tab2():
    mask = torch.ones(2, 1, 256, 256)
    mask[:, :, 100:133, 50:83] = 0
    assert _hwc(layer_table(GlobalNet(), torch.randn(2, 3, 256, 256), mask)) == TAB2


def test_dad_head_matches_tab3():
    head = DADHead()
    rows = []
    x = torch.randn(4, 256)
    rows.append(("Input", x.shape[1]))
    for name, layer in head.named_children():
        x = layer(x)
        rows.append((name, x.shape[1]))
    assert rows == TAB3
    probs = head(torch.randn(4, 128), torch.randn(4, 128))
    assert probs.shape == (4, 2) and torch.allclose(probs.sum(1), torch.ones(4))


def test_leaky_slopes_follow_the_supplementary():
    assert all(m.negative_slope == 5e-3 for m in LocalNet().modules() if isinstance(m, torch.nn.LeakyReLU))
    assert all(m.negative_slope == 1e-2 for m in DADHead().modules() if isinstance(m, torch.nn.LeakyReLU))


@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (2, 1, 33, 33), (3, 33, 33)])
def test_local_net_rejects_wrong_patch_shapes(shape):
    with pytest.raises(ValueError, match=r"\(B, 3, 33, 33\).*got"):
        LocalNet()(torch.randn(*shape))


@pytest.mark.parametrize("img_shape,mask_shape,msg", [
    ((1, 3, 255, 255), (1, 1, 255, 255), "images"),
    ((1, 3, 256, 256), (1, 3, 256, 256), "single-channel mask"),
    ((1, 3, 256, 256), (1, 1, 128, 128), "single-channel mask"),
    ((2, 3, 256, 256), (3, 1, 256, 256), "batch"),
])
def test_global_net_rejects_wrong_shapes(img_shape, mask_shape, msg):
    with pytest.raises(ValueError, match=msg):
        GlobalNet()(torch.randn(*img_shape), torch.ones(*mask_shape))


def test_local_net_receptive_field_is_30_of_the_33_pixels():
    """The floor of the two 2x2 pools drops the last 3 rows/cols of the patch (documented)."""
    torch.manual_seed(0)
    x = torch.rand(1, 3, 33, 33, requires_grad=True)
    LocalNet()(x).sum().backward()
    used = x.grad.abs().sum((0, 1)) > 0
    assert used[:30, :30].all() and not used[30:].any() and not used[:, 30:].any()
