"""benchmarks/teacher.py and benchmarks/deadleaves.py: measuring a teacher and building offline candidates."""
import pytest
import torch

from glance_lite.patches import PatchGrid
from glance_lite.teacher import TeacherUnavailable, load_teacher, normalize


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("teacher")


@pytest.fixture(scope="module")
def leaves(load_benchmark):
    return load_benchmark("deadleaves")


def test_spread_keeps_every_part_of_a_sorted_list(bench):
    assert bench.spread(10, 3).tolist() == [0, 4, 9]  # first, middle, last: every defect folder keeps its share
    assert bench.spread(4, 10).tolist() == [0, 1, 2, 3]


def test_the_deepest_descriptor_is_the_distillation_target(bench):
    teacher, grid = load_teacher("random", 32, seed=0), PatchGrid(per_side=2)
    x = torch.rand(2, 3, 256, 256)
    d = bench.patch_descriptors(teacher, x, grid)
    assert {k: tuple(v.shape) for k, v in d.items()} == {"2": (2, 4, 128), "3": (2, 4, 256), "4": (2, 4, 512)}
    r = teacher(grid.patches(normalize(x)).flatten(0, 1)).view(2, 4, 512)
    assert torch.allclose(d["4"], r, atol=1e-4)


def test_r2_is_one_for_a_copy_and_zero_for_the_mean(bench):
    t = torch.randn(50, 8)
    assert bench.r2(t, t) == pytest.approx(1.0)
    assert bench.r2(t, t.mean(0).expand_as(t)) == pytest.approx(0.0, abs=1e-9)


def test_recalibrated_teacher_normalises_its_inputs_and_loads_as_a_path(bench, tmp_path):
    teacher = load_teacher("random", 32, seed=0)
    x = torch.rand(64, 3, 32, 32)
    bench.recalibrate_bn(teacher.backbone, x, batch=32)
    with torch.no_grad():
        y = teacher.backbone.bn1(teacher.backbone.conv1(normalize(x)))
    assert y.mean((0, 2, 3)).abs().max() < 1e-3 and (y.var((0, 2, 3)) - 1).abs().max() < 0.05
    path = tmp_path / "bn.pth"
    fc = {"fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}  # as `build` stores it
    torch.save(teacher.backbone.state_dict() | fc, path)
    loaded = load_teacher(str(path), 32)
    assert loaded(torch.rand(3, 3, 33, 33)).shape == (3, 512)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(TeacherUnavailable, match="cannot load ResNet-18 weights from"):
        load_teacher(str(path), 32)


def test_dead_leaves_are_reproducible_images_in_range(leaves):
    a = leaves.dead_leaves(4, 32, torch.Generator().manual_seed(1), shapes=16)
    b = leaves.dead_leaves(4, 32, torch.Generator().manual_seed(1), shapes=16)
    assert a.shape == (4, 3, 32, 32) and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a[0], a[1])
    v = leaves.augment(a, torch.Generator().manual_seed(2))
    assert v.shape == a.shape and v.min() >= 0 and v.max() <= 1 and not torch.equal(v, a)


def test_nt_xent_prefers_matching_views(leaves):
    z = torch.randn(8, 16)
    assert leaves.nt_xent(torch.cat([z, z])) < leaves.nt_xent(torch.cat([z, torch.randn(8, 16)]))
