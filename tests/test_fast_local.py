"""The dense Local-Net path (fast_local.py) equals Local-Net run on each patch."""
import pytest
import torch

from glance_lite import GlobalNet, LocalNet, PatchGrid
import glance_lite.fast_local as fast_local
from glance_lite.fast_local import aligned, conv2_side, dense_pays, local_head, local_trunk
from glance_lite.patches import gather_windows
from glance_lite.scoring import patch_features, patch_features_naive


def test_trunk_crop_then_head_equals_local_net_on_the_patch():
    torch.manual_seed(0)
    net = LocalNet().double().eval()
    img = torch.rand(1, 3, 256, 256, dtype=torch.float64)
    trunk = local_trunk(net, img)
    assert trunk.shape == (1, 256, 123, 123)
    for r, c in [(0, 0), (0, 222), (222, 0), (100, 46), (222, 222)]:
        win = gather_windows(trunk, torch.zeros(1, dtype=torch.long), torch.tensor([[r // 2, c // 2]]), conv2_side())
        ref = net(img[:, :, r:r + 33, c:c + 33])
        assert torch.allclose(local_head(net, win), ref, atol=1e-12)


def test_odd_corner_breaks_the_pooling_alignment():
    """Why the grid snaps to even corners: at an odd corner the crop is NOT the patch's output."""
    torch.manual_seed(0)
    net = LocalNet().double().eval()
    img = torch.rand(1, 3, 256, 256, dtype=torch.float64)
    trunk = local_trunk(net, img)
    r = c = 101
    win = gather_windows(trunk, torch.zeros(1, dtype=torch.long), torch.tensor([[r // 2, c // 2]]), conv2_side())
    assert not torch.allclose(local_head(net, win), net(img[:, :, r:r + 33, c:c + 33]), atol=1e-6)


def test_aligned_detects_the_grids():
    assert aligned(PatchGrid().top_left)
    assert not aligned(PatchGrid(align=1).top_left)  # 23, 35, ... are odd
    assert not aligned(PatchGrid(per_side=3, patch_size=17).top_left, 17)  # not Local-Net's patch size


def test_dense_path_only_where_it_pays():
    assert dense_pays(400, 256) and dense_pays(144, 256)  # the 20x20 and 12x12 grids
    assert not dense_pays(36, 256)  # 6x6 (smoke profile): conv2 on 36 patches is cheaper


@pytest.fixture
def trunk_calls(monkeypatch):
    calls = []
    real = fast_local.local_trunk
    monkeypatch.setattr(fast_local, "local_trunk", lambda net, x: calls.append(len(x)) or real(net, x))
    return calls


@pytest.mark.parametrize("grid, dense", [(PatchGrid(per_side=12), True), (PatchGrid(per_side=12, align=1), False),
                                         (PatchGrid(per_side=5), False)])
def test_patch_features_match_naive_on_both_paths(grid, dense, trunk_calls):
    torch.manual_seed(2)
    L, G = LocalNet().eval(), GlobalNet().eval()
    imgs = torch.rand(2, 3, 256, 256)
    zl, zg = patch_features(L, G, imgs, grid, chunk=50)  # chunks smaller than an image's patches
    assert bool(trunk_calls) == dense
    rl, rg = patch_features_naive(L, G, imgs, grid)
    assert torch.allclose(zl, rl, atol=1e-5) and torch.allclose(zg, rg, atol=1e-5)


def test_patch_features_blocks_of_images_match_one_at_a_time(trunk_calls):
    torch.manual_seed(3)
    L, G = LocalNet().eval(), GlobalNet().eval()
    imgs = torch.rand(3, 3, 256, 256)
    grid = PatchGrid(per_side=12)
    a = patch_features(L, G, imgs, grid, chunk=150)   # one image per block
    b = patch_features(L, G, imgs, grid, chunk=450)   # three images per block
    assert trunk_calls == [1, 1, 1, 3]
    assert all(torch.allclose(x, y, atol=1e-5) for x, y in zip(a, b))


@pytest.mark.parametrize("align", [2, 1])
def test_local_only_features_are_local_net_on_each_crop(align, trunk_calls):
    """The local-only baseline embeds through grid_local_features: same Z_l as crop-by-crop."""
    from glance_lite.baselines.local_only import LocalOnly
    from glance_lite.teacher import normalize
    torch.manual_seed(4)
    net = LocalNet().eval()
    grid = PatchGrid(per_side=12, align=align)
    imgs = torch.rand(3, 3, 256, 256)
    z = LocalOnly(net, grid, chunk=100).embed(imgs)  # chunk < 144 patches of an image
    assert bool(trunk_calls) == (align == 2)
    with torch.no_grad():
        ref = net(grid.patches(normalize(imgs)).flatten(0, 1)).view(3, 144, -1)
    assert torch.allclose(z, ref, atol=1e-5)


def test_local_map_is_local_net_at_corners_on_multiples_of_4():
    """All of Tab. 1 over the whole image (fast_local.local_map): entry (i, j) is the patch at (4i, 4j)."""
    torch.manual_seed(0)
    net = LocalNet().double().eval()
    img = torch.rand(1, 3, 256, 256, dtype=torch.float64)
    m = fast_local.local_map(net, img)
    assert m.shape == (1, 128, 57, 57)
    for r, c in [(0, 0), (0, 220), (220, 0), (100, 48), (220, 220)]:
        assert torch.allclose(m[:, :, r // 4, c // 4], net(img[:, :, r:r + 33, c:c + 33]), atol=1e-12)
    # an even corner that is not a multiple of 4 breaks pool2's alignment: why the lattice is on 4 px
    r = c = 102
    assert not torch.allclose(m[:, :, r // 4, c // 4], net(img[:, :, r:r + 33, c:c + 33]), atol=1e-6)


def test_grid_features_take_the_fully_dense_path_on_the_context_lattice():
    from glance_lite.context_train import lattice
    assert fast_local.fully_dense(lattice(stride=4), 256)
    assert not fast_local.fully_dense(lattice(stride=32), 256)          # too few patches to pay
    assert not fast_local.fully_dense(PatchGrid().top_left, 256)        # even corners, not all on 4
    torch.manual_seed(1)
    net = LocalNet().double().eval()
    img = torch.rand(2, 3, 256, 256, dtype=torch.float64)
    pos = lattice(stride=4)
    z = fast_local.grid_local_features(net, img, pos)
    assert z.shape == (2, 56 * 56, 128)
    pick = torch.tensor([0, 56, 1000, 56 * 56 - 1])
    for k in pick.tolist():
        r, c = pos[k].tolist()
        assert torch.allclose(z[:, k], net(img[:, :, r:r + 33, c:c + 33]), atol=1e-12)
