"""Bad and unusual input files: each loads correctly or raises DataError naming the file."""

import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from glance_lite.data import DataError, load_image, load_mask, load_mvtec

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (24, 24, 3), dtype=np.uint8)


def encode(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


PNG_BYTES = encode(Image.fromarray(RGB))
JPEG_BYTES = encode(Image.fromarray(RGB), "JPEG")


# ----------------------------------------------------------------- images: bytes that must fail
BAD_IMAGES = {
    "corrupt.png": PNG_BYTES[:16] + bytes(RNG.integers(0, 256, 400, dtype=np.uint8)),
    "truncated.png": PNG_BYTES[: len(PNG_BYTES) // 2],
    "truncated.jpg": JPEG_BYTES[: len(JPEG_BYTES) // 2],
    "zero.png": b"",
    "text.png": b"this is not an image\n",
    "header_only.png": PNG_BYTES[:8],
}


@pytest.mark.parametrize("name", sorted(BAD_IMAGES))
def test_bad_image_raises_dataerror_naming_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(BAD_IMAGES[name])
    with pytest.raises(DataError) as info:
        load_image(path, size=16)
    assert name in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="nothere.png"):
        load_image(tmp_path / "nothere.png")


# ----------------------------------------------------------------- images: modes that must load
def _pal() -> Image.Image:
    im = Image.new("P", (8, 8), 1)
    im.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    return im


# name -> (PIL image, format, expected RGB value of every pixel in [0, 1])
MODES = {
    "L": (Image.new("L", (8, 8), 128), "PNG", [128 / 255] * 3),
    "1": (Image.new("1", (8, 8), 1), "PNG", [1.0] * 3),
    "LA_opaque": (Image.new("LA", (8, 8), (100, 255)), "PNG", [100 / 255] * 3),
    "LA_transparent": (Image.new("LA", (8, 8), (100, 0)), "PNG", [0.0] * 3),   # composited on black
    "RGBA_half": (Image.new("RGBA", (8, 8), (200, 100, 50, 51)), "PNG", [40 / 255, 20 / 255, 10 / 255]),
    "P": (_pal(), "PNG", [10 / 255, 20 / 255, 30 / 255]),
    "I16_max": (Image.fromarray(np.full((8, 8), 65535, np.uint16)), "PNG", [1.0] * 3),
    "I16_mid": (Image.fromarray(np.full((8, 8), 32896, np.uint16)), "PNG", [32896 / 65535] * 3),
    "CMYK_white": (Image.new("CMYK", (8, 8), (0, 0, 0, 0)), "TIFF", [1.0] * 3),
    "RGB_bmp": (Image.new("RGB", (8, 8), (255, 0, 0)), "BMP", [1.0, 0.0, 0.0]),
}


@pytest.mark.parametrize("name", sorted(MODES))
def test_image_modes_convert(tmp_path, name):
    img, fmt, expected = MODES[name]
    path = tmp_path / f"{name}.{ {'PNG': 'png', 'TIFF': 'tif', 'BMP': 'bmp'}[fmt] }"
    path.write_bytes(encode(img, fmt))
    x = load_image(path, size=None)
    assert x.shape == (3, 8, 8) and x.dtype == torch.float32
    assert torch.allclose(x, torch.tensor(expected).view(3, 1, 1).expand(3, 8, 8), atol=2.5e-3), x[:, 0, 0]
    y = load_image(path, size=5)
    assert y.shape == (3, 5, 5) and 0 <= y.min() and y.max() <= 1


def test_sixteen_bit_keeps_precision(tmp_path):
    ramp = (np.arange(64, dtype=np.uint16) * 1000).reshape(8, 8)
    path = tmp_path / "ramp16.png"
    Image.fromarray(ramp).save(path)
    x = load_image(path, size=None)
    assert torch.allclose(x[0], torch.from_numpy(ramp.astype(np.float32) / 65535), atol=1e-6)


# ----------------------------------------------------------------- masks
MASKS = {
    # name -> (image, expected binary values or None for DataError)
    "binary_L": (Image.fromarray(np.array([[0, 255]] * 2, np.uint8)), [[0, 1]] * 2),
    "nonbinary_L": (Image.fromarray(np.array([[0, 100, 127, 128, 200, 255]], np.uint8)), [[0, 0, 0, 1, 1, 1]]),
    "one_bit": (Image.fromarray(np.array([[0, 255, 0]], np.uint8)).convert("1"), [[0, 1, 0]]),
    "gray_RGB": (Image.fromarray(np.array([[[0] * 3, [255] * 3]], np.uint8)), [[0, 1]]),
    "I16": (Image.fromarray(np.array([[30000, 40000]], np.uint16)), [[0, 1]]),
    "colour_RGB": (Image.fromarray(np.array([[[255, 0, 0], [0, 0, 0]]], np.uint8)), None),
}


@pytest.mark.parametrize("name", sorted(MASKS))
def test_mask_thresholds(tmp_path, name):
    img, expected = MASKS[name]
    path = tmp_path / f"{name}_mask.png"
    img.save(path)
    if expected is None:
        with pytest.raises(DataError, match=path.name):
            load_mask(path, size=None)
        return
    m = load_mask(path, size=None)
    assert m.shape == (1, *np.array(expected).shape)
    assert m[0].tolist() == np.array(expected, np.float32).tolist()


def test_mask_resize_stays_binary(tmp_path):
    path = tmp_path / "m_mask.png"
    Image.fromarray((RNG.random((37, 23)) > 0.5).astype(np.uint8) * 255).save(path)
    m = load_mask(path, size=16)
    assert m.shape == (1, 16, 16) and set(m.unique().tolist()) <= {0.0, 1.0}


def test_mask_size_mismatch_names_both_files(tmp_path):
    path = tmp_path / "000_mask.png"
    Image.new("L", (30, 20)).save(path)
    with pytest.raises(DataError) as info:
        load_mask(path, original_size=(32, 20), image_path=tmp_path / "000.png")
    msg = str(info.value)
    assert "000_mask.png" in msg and "000.png" in msg and "30x20" in msg and "32x20" in msg


# ----------------------------------------------------------------- whole-tree failures of load_mvtec
def _tree(root: Path) -> Path:
    for sub, n in (("train/good", 2), ("test/good", 1), ("test/crack", 1)):
        for i in range(n):
            (root / "toy" / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(RGB).save(root / "toy" / sub / f"{i:03d}.png")
    (root / "toy/ground_truth/crack").mkdir(parents=True)
    Image.new("L", (24, 24), 255).save(root / "toy/ground_truth/crack/000_mask.png")
    return root


def _missing_mask(r):
    (r / "toy/ground_truth/crack/000_mask.png").unlink()
    return "test", "ground_truth/crack/000_mask.png"


def _wrong_mask_size(r):
    Image.new("L", (20, 24), 255).save(r / "toy/ground_truth/crack/000_mask.png")
    return "test", "000_mask.png"


def _text_in_folder(r):
    (r / "toy/train/good/readme.txt").write_text("hi")
    return "train", "readme.txt"


def _corrupt_train(r):
    (r / "toy/train/good/001.png").write_bytes(PNG_BYTES[:100])
    return "train", "001.png"


def _no_train_good(r):
    for f in (r / "toy/train/good").iterdir():
        f.unlink()
    (r / "toy/train/good").rmdir()
    return "train", "train/good"


def _empty_train_good(r):
    for f in (r / "toy/train/good").iterdir():
        f.unlink()
    return "train", "train/good"


TREE_CASES = [_missing_mask, _wrong_mask_size, _text_in_folder, _corrupt_train, _no_train_good,
              _empty_train_good]


@pytest.mark.parametrize("breaker", TREE_CASES, ids=lambda f: f.__name__)
def test_tree_errors_name_the_file(tmp_path, breaker):
    root = _tree(tmp_path)
    assert len(load_mvtec(root, "toy", "test", 16)) == 2  # intact tree loads
    split, needle = breaker(root)
    with pytest.raises(DataError) as info:
        load_mvtec(root, "toy", split, 16)
    assert needle in str(info.value).replace("\\", "/")


# ----------------------------------------------------------------- property: any truncation
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.sampled_from([("png", PNG_BYTES), ("jpg", JPEG_BYTES)]), frac=st.floats(0.0, 1.0))
def test_truncation_never_raises_other_errors(data, frac):
    ext, raw = data
    cut = raw[: int(len(raw) * frac)]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"cut_{len(cut)}.{ext}"
        path.write_bytes(cut)
        try:
            x = load_image(path, size=8)
        except DataError as e:
            assert path.name in str(e)
        else:
            assert x.shape == (3, 8, 8)


@settings(max_examples=40, deadline=None)
@given(pos=st.integers(0, len(PNG_BYTES) - 1), byte=st.integers(0, 255))
def test_flipped_byte_never_raises_other_errors(pos, byte):
    raw = bytearray(PNG_BYTES)
    raw[pos] = byte
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "flipped.png"
        path.write_bytes(bytes(raw))
        try:
            load_image(path, size=8)
        except DataError as e:
            assert "flipped.png" in str(e)
