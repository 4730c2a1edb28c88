"""The windowed Global-Net path equals the plain Global-Net (scoring's speed trick)."""
import pytest
import torch

from glance_lite import GlobalNet, PatchGrid, normalize
from glance_lite.fast_global import global_features_holes, layer0_pooled, window_plan
from glance_lite.scoring import _grid_masks_and_plan


@pytest.mark.parametrize("grid", [PatchGrid(), PatchGrid(per_side=7), PatchGrid(per_side=3, patch_size=17)])
def test_window_covers_every_position_the_hole_changes(grid):
    torch.manual_seed(0)
    net = GlobalNet().double().eval()
    img = torch.rand(1, 3, 256, 256, dtype=torch.float64) + 0.5  # positive: every change shows up
    q_side, q0 = window_plan(grid)
    full, _ = layer0_pooled(net, img)
    masks = grid.masks().double()
    for i in [0, grid.per_side - 1, grid.n_patches // 2 + 1, grid.n_patches - 1]:
        holed, _ = layer0_pooled(net, img, masks[i:i + 1])
        changed = (holed != full).any(1)[0].nonzero()
        r0, c0 = q0[i].tolist()
        assert changed.numel() > 0
        assert changed[:, 0].min() >= r0 and changed[:, 0].max() < r0 + q_side
        assert changed[:, 1].min() >= c0 and changed[:, 1].max() < c0 + q_side


@pytest.mark.parametrize("grid", [PatchGrid(), PatchGrid(per_side=5)])
def test_fast_path_equals_global_net(grid):
    torch.manual_seed(1)
    net = GlobalNet().eval()
    imgs = normalize(torch.rand(2, 3, 256, 256))
    masks, plan = _grid_masks_and_plan(grid, "cpu")
    idx = torch.randperm(grid.n_patches)[:25]
    img_idx = torch.randint(0, 2, (25,))
    with torch.inference_mode():
        base, _ = layer0_pooled(net, imgs)
        fast = global_features_holes(net, imgs, img_idx, idx, grid, masks, plan, base)
        ref = net(imgs[img_idx], masks[idx])
    assert torch.allclose(fast, ref, atol=1e-5)
