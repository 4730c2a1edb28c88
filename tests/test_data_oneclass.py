"""One-class splits (GradCon protocol, paper Sec. 4.1), distillation images and random crops."""

import socket

import pytest
import torch

from glance_lite.data import DataError, distillation_images, one_class_split, random_crops


@pytest.mark.parametrize("normal_class", [0, 7])
def test_digits_sizes_balance_labels(normal_class):
    s = one_class_split("digits", normal_class=normal_class, seed=0)
    n_in = int((s.test_labels == 0).sum())
    assert s.train.dim() == 4 and s.train.shape[1:] == (3, 8, 8)
    assert s.test.shape == (2 * n_in, 3, 8, 8) and s.test_labels.shape == (2 * n_in,)
    assert int(s.test_labels.sum()) == n_in                         # as many outliers as inliers
    assert 85 <= s.train.shape[0] <= 95 and 85 <= n_in <= 95       # ~180 images per class, split 50/50
    assert s.test_labels.dtype == torch.long and s.test_labels[:n_in].sum() == 0
    assert s.train.min() >= 0 and s.train.max() <= 1 and s.train.max() > 0.9
    assert torch.equal(s.train[:, 0], s.train[:, 2])                # gray copied to 3 channels


def test_digits_train_and_test_disjoint_and_outliers_from_other_classes():
    from sklearn.datasets import load_digits

    d = load_digits()
    lookup = {bytes(img.astype("uint8").tobytes()): int(t) for img, t in zip(d.images, d.target)}
    s = one_class_split("digits", normal_class=3, seed=1)

    def cls(x):
        return lookup[bytes((x[0] * 16).round().to(torch.uint8).numpy().tobytes())]

    assert {cls(x) for x in s.train} == {3}
    assert {cls(x) for x in s.test[s.test_labels == 0]} == {3}
    outlier_classes = [cls(x) for x in s.test[s.test_labels == 1]]
    assert 3 not in outlier_classes and len(set(outlier_classes)) >= 5
    train_keys = {x.numpy().tobytes() for x in s.train}
    assert not any(x.numpy().tobytes() in train_keys for x in s.test[s.test_labels == 0])


def test_digits_seeded_reproducible():
    a, b = one_class_split("digits", 2, seed=5), one_class_split("digits", 2, seed=5)
    c = one_class_split("digits", 2, seed=6)
    assert torch.equal(a.train, b.train) and torch.equal(a.test, b.test)
    assert not torch.equal(a.test, c.test)


def test_digits_resize():
    s = one_class_split("digits", 1, size=32)
    assert s.train.shape[1:] == (3, 32, 32) and s.test.shape[1:] == (3, 32, 32)


def test_bad_arguments():
    with pytest.raises(DataError, match="mnist"):
        one_class_split("mnist")
    with pytest.raises(DataError, match="normal_class"):
        one_class_split("digits", normal_class=10)


def test_cifar10_offline_is_a_clear_dataerror(tmp_path, monkeypatch):
    """No network (connect() refused at once): the message points to dataset='digits'."""
    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    with pytest.raises(DataError, match="digits"):
        one_class_split("cifar10", 0, root=tmp_path)
    with pytest.raises(DataError, match="internet"):
        distillation_images("cifar10", root=tmp_path)
    with pytest.raises(DataError, match="Flowers102.*internet"):
        distillation_images("flowers102", root=tmp_path)


def test_distillation_sklearn_photos():
    x = distillation_images("sklearn")
    assert x.shape == (2, 3, 427, 640) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1 and x.std() > 0.1


def test_distillation_folder(tmp_path):
    from PIL import Image

    for i, size in enumerate([(40, 50), (70, 30)]):
        Image.new("RGB", size, (i * 100, 50, 50)).save(tmp_path / f"{i}.png")
    x = distillation_images(tmp_path, size=48)
    assert x.shape == (2, 3, 48, 48)
    with pytest.raises(DataError, match="neither"):
        distillation_images(tmp_path / "missing")


def test_random_crops_match_slices():
    images = torch.rand(3, 3, 50, 60)
    g = torch.Generator().manual_seed(0)
    crops = random_crops(images, 200, size=33, generator=g)
    assert crops.shape == (200, 3, 33, 33)
    # replay the generator to recover the indices and compare with plain slicing
    g = torch.Generator().manual_seed(0)
    which = torch.randint(3, (200,), generator=g)
    top = torch.randint(50 - 33 + 1, (200,), generator=g)
    left = torch.randint(60 - 33 + 1, (200,), generator=g)
    for k in range(0, 200, 17):
        ref = images[which[k], :, top[k]:top[k] + 33, left[k]:left[k] + 33]
        assert torch.equal(crops[k], ref)
    assert len({(int(t), int(l)) for t, l in zip(top, left)}) > 100  # positions vary
    with pytest.raises(DataError, match="smaller"):
        random_crops(torch.rand(1, 3, 20, 20), 4, size=33)


def test_cifar10_protocol_with_fake_data(monkeypatch):
    """The CIFAR-10 path (HWC uint8 -> NCHW float) on stand-in arrays, since the real data needs internet."""
    import numpy as np
    from glance_lite.data import natural

    rng = np.random.default_rng(0)

    def fake(root, train):
        n = 500 if train else 100
        data = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        return data, np.arange(n) % 10

    monkeypatch.setattr(natural, "_cifar10", fake)
    s = one_class_split("cifar10", normal_class=4, seed=0)
    assert s.train.shape == (50, 3, 32, 32) and s.test.shape == (20, 3, 32, 32)
    assert s.test_labels.tolist() == [0] * 10 + [1] * 10
    assert 0 <= s.train.min() and s.train.max() <= 1
    x = distillation_images("cifar10")
    assert x.shape == (500, 3, 64, 64)


def test_flowers102_with_fake_data(monkeypatch):
    from PIL import Image
    from glance_lite.data import natural

    photos = [(Image.new("RGB", (500, 300 + 10 * i), (i * 40, 90, 30)), i) for i in range(5)]
    monkeypatch.setattr(natural, "_torchvision", lambda name, root, **kw: photos)
    x = distillation_images("flowers102", max_images=4)
    assert x.shape == (4, 3, 128, 128)
    # four of five, spread over the set (0, 1, 3, 4): the third one is photograph 3
    assert torch.allclose(x[2, :, 64, 64], torch.tensor([120, 90, 30]) / 255.0, atol=1e-6)


def test_subset_keeps_the_protocol_on_less_data():
    from glance_lite.data import one_class_split
    split = one_class_split("digits", 3)
    small = split.subset(20, 5)
    assert len(small.train) == 20 and torch.equal(small.train, split.train[:20])
    assert small.test_labels.tolist() == [0] * 5 + [1] * 5
    assert torch.equal(small.test[:5], split.test[split.test_labels == 0][:5])
