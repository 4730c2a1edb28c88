"""Raster grid, crops, hole masks and stain negatives."""
import pytest
import torch

from glance_lite import PatchGrid, add_stains, shuffled_negatives
from glance_lite.patches import crop, hole_masks, random_top_left


def test_grid_geometry_default():
    g = PatchGrid()
    tl = g.top_left
    assert tl.shape == (400, 2) and g.n_patches == 400
    assert tl[0].tolist() == [0, 0] and tl[-1].tolist() == [222, 222]  # spans the image (even corners)
    assert tl[1].tolist() == [0, 12] and tl[20].tolist() == [12, 0]  # raster order: row by row
    assert (tl % 2 == 0).all()  # align=2: every corner on Local-Net's pooling grid
    assert PatchGrid(align=1).top_left[-1].tolist() == [223, 223]
    assert torch.equal(g.centres[0], torch.tensor([16.0, 16.0]))
    assert (g.offsets.diff() <= 33).all()  # neighbours overlap or touch: no uncovered pixel


def test_grid_patches_equal_slicing():
    g = PatchGrid(per_side=5)
    imgs = torch.rand(2, 3, 256, 256)
    p = g.patches(imgs)
    assert p.shape == (2, 25, 3, 33, 33)
    for b in range(2):
        for i, (r, c) in enumerate(g.top_left.tolist()):
            assert torch.equal(p[b, i], imgs[b, :, r:r + 33, c:c + 33])


def test_masks_are_zero_exactly_on_the_patch():
    g = PatchGrid(per_side=3)
    m = g.masks()
    assert m.shape == (9, 1, 256, 256)
    for i, (r, c) in enumerate(g.top_left.tolist()):
        assert m[i, 0, r:r + 33, c:c + 33].sum() == 0
        assert m[i].sum() == 256 * 256 - 33 * 33


def test_crop_rejects_boxes_outside_and_bad_grids():
    with pytest.raises(ValueError, match="leaves"):
        crop(torch.rand(1, 3, 40, 40), torch.tensor([[10, 10]]), 33)
    with pytest.raises(ValueError, match="256x256"):
        PatchGrid().patches(torch.rand(1, 3, 255, 255))
    with pytest.raises(ValueError):
        PatchGrid(patch_size=300)


def test_random_boxes_stay_inside():
    tl = random_top_left(1000, 256, 33, torch.Generator().manual_seed(0))
    assert tl.min() >= 0 and tl.max() <= 223
    assert hole_masks(tl[:4], 256, 33).shape == (4, 1, 256, 256)


def test_stains_are_small_seeded_and_change_the_patch():
    patches = torch.rand(64, 3, 33, 33)
    a, blob_a = add_stains(patches, torch.Generator().manual_seed(3))
    b, _ = add_stains(patches, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)  # reproducible
    assert a.min() >= 0 and a.max() <= 1
    area = (blob_a > 0).float().mean(dim=(1, 2, 3))
    assert (area > 0).all() and (area < 0.35).all()  # most of the patch untouched
    changed = ((a - patches).abs().sum(1) > 1e-6).float().mean(dim=(1, 2))
    assert (changed > 0).all() and torch.equal(changed <= area + 1e-6, torch.ones(64, dtype=torch.bool))


def test_profile_stains_paper_small_short_larger():
    """`paper` keeps add_stains' defaults (radius up to P/5 = 6.6 px for a 33-px patch); the short
    profiles paint larger, more opaque stains."""
    from glance_lite.profiles import get_profile, profile_from_config
    patches = torch.full((256, 3, 33, 33), 0.5)
    assert get_profile("paper").deviations.stain_kwargs() == dict(min_radius=2.0, max_radius=6.6, min_opacity=0.5)
    default = add_stains(patches, torch.Generator().manual_seed(0))  # add_stains' own default: P/5
    assert torch.equal(default[1], add_stains(patches, torch.Generator().manual_seed(0),
                                              **get_profile("paper").deviations.stain_kwargs())[1])
    short = get_profile("cpu").deviations.stain_kwargs()
    assert short == dict(min_radius=4.0, max_radius=8.0, min_opacity=0.7)
    area = {}
    for name, kw in (("paper", get_profile("paper").deviations.stain_kwargs()), ("cpu", short)):
        _, blob = add_stains(patches, torch.Generator().manual_seed(0), **kw)
        area[name] = (blob > 0.5).float().mean(dim=(1, 2, 3))
    assert area["cpu"].min() > area["paper"].min() and area["cpu"].mean() > 1.5 * area["paper"].mean()
    assert (area["cpu"] < 0.35).all()  # still a stain on the patch, not a new patch
    # a run's config.json (lists) gives back the same profile, tuple included
    cfg = get_profile("cpu").to_dict()
    cfg["deviations"]["stain_radius"] = list(cfg["deviations"]["stain_radius"])
    assert profile_from_config(cfg) == get_profile("cpu")


def test_shuffled_negatives_never_keep_their_own_image():
    imgs = torch.arange(10).float().view(10, 1)
    neg = shuffled_negatives(imgs, torch.Generator().manual_seed(0))
    assert (neg != imgs).all() and sorted(neg.view(-1).tolist()) == list(range(10))
    with pytest.raises(ValueError):
        shuffled_negatives(imgs[:1])


def test_context_stains_corrupt_some_images_reproducibly():
    """Global-Net's training images get 0..max stains each (stains.context_stains)."""
    from glance_lite.stains import context_stains
    images = torch.rand(32, 3, 64, 64)
    assert context_stains(images, 0) is images                      # off: untouched (paper)
    a = context_stains(images, 2, torch.Generator().manual_seed(1), 4, 10)
    b = context_stains(images, 2, torch.Generator().manual_seed(1), 4, 10)
    assert torch.equal(a, b) and a.min() >= 0 and a.max() <= 1
    changed = ((a - images).abs().amax(dim=(1, 2, 3)) > 1e-6)
    assert 0 < changed.sum() < len(images)                           # some clean, some stained
    area = ((a - images).abs().sum(1) > 1e-6).float().mean(dim=(1, 2))
    assert (area[changed] < 0.5).all()                               # stains, not new images
    black = torch.zeros(32, 3, 64, 64)
    grey = context_stains(black, 2, torch.Generator().manual_seed(1), 4, 10, grey=True)
    assert grey.abs().sum() > 0 and torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])
    colour = context_stains(black, 2, torch.Generator().manual_seed(1), 4, 10)
    assert not torch.equal(colour[:, 0], colour[:, 1])               # the default paints colours


def test_patch_on_defect_lands_inside_a_region_not_between_two():
    """A swap's mask has two regions: their centroid is empty board; the picked patch's centre
    must lie inside the larger region, and the patch inside the image."""
    from glance_lite.patches import patch_on_defect
    mask = torch.zeros(256, 256)
    mask[40:70, 30:60] = 1          # region A (30 x 30)
    mask[180:200, 190:210] = 1      # region B (20 x 20); centroid of both: empty board
    r, c = patch_on_defect(mask)
    assert mask[r + 16, c + 16] == 1 and 40 <= r + 16 < 70 and 30 <= c + 16 < 60
    corner = torch.zeros(1, 256, 256)
    corner[0, 250:, 250:] = 1       # at the image corner: the patch is clamped inside
    r, c = patch_on_defect(corner)
    assert (r, c) == (223, 223)
    assert patch_on_defect(torch.zeros(256, 256)) == (111, 111)
