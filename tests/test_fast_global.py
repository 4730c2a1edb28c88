"""The windowed Global-Net path equals the plain Global-Net (scoring's speed trick)."""
import pytest
import torch

from glance_lite import GlobalNet, PatchGrid, normalize
from glance_lite.fast_global import front, global_features_holes, hole_free_front, window_plan
from glance_lite.scoring import _grid_plan


@pytest.mark.parametrize("grid", [PatchGrid(), PatchGrid(per_side=7), PatchGrid(per_side=3, patch_size=17)])
def test_window_covers_every_position_the_hole_changes(grid):
    torch.manual_seed(0)
    net = GlobalNet().double().eval()
    img = torch.rand(1, 3, 256, 256, dtype=torch.float64) + 0.5  # positive: every change shows up
    q_side, q0 = window_plan(grid)
    full = hole_free_front(net, img)
    masks = grid.masks().double()
    for i in [0, grid.per_side - 1, grid.n_patches // 2 + 1, grid.n_patches - 1]:
        holed, _ = front(net, img, masks[i:i + 1])
        changed = (holed != full).any(1)[0].nonzero()
        r0, c0 = q0[i].tolist()
        assert changed.numel() > 0
        assert changed[:, 0].min() >= r0 and changed[:, 0].max() < r0 + q_side
        assert changed[:, 1].min() >= c0 and changed[:, 1].max() < c0 + q_side


@pytest.mark.parametrize("arch", ["paper", "coords", "centred"])
@pytest.mark.parametrize("grid", [PatchGrid(), PatchGrid(per_side=5), PatchGrid(per_side=4, patch_size=17),
                                  PatchGrid(per_side=3, patch_size=65)])  # 65: layer 2_1 still sees the hole
def test_fast_path_equals_global_net(grid, arch):
    torch.manual_seed(1)
    net = GlobalNet(arch=arch).eval()
    if arch != "paper":
        torch.nn.init.normal_(net.prior)
    imgs = normalize(torch.rand(2, 3, 256, 256))
    masks, plan = grid.masks(), _grid_plan(grid, "cpu")
    k, k2 = grid.per_side, grid.n_patches
    idx = torch.cat([torch.tensor([0, k - 1, k2 - k, k2 - 1]), torch.randperm(k2)[:21]])  # corners too
    img_idx = torch.randint(0, 2, (len(idx),))
    with torch.inference_mode():
        base = hole_free_front(net, imgs)
        fast = global_features_holes(net, imgs, img_idx, idx, grid, plan, base)
        ref = net(imgs[img_idx], masks[idx])
    assert torch.allclose(fast, ref, atol=1e-5)
