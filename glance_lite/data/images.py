"""Robust image and mask reading: every file becomes a float tensor or a DataError.

MVTec AD (paper Sec. 4.1) ships 8-bit RGB and grayscale PNGs, but folders that
users assemble themselves contain all sorts of files.  This module turns any
readable image into a ``(3, S, S)`` float tensor in ``[0, 1]`` and any readable
mask into a ``(1, S, S)`` tensor in ``{0, 1}``; everything else raises
:class:`~glance_lite.data.errors.DataError` naming the file.

Mode conversion rules (PIL modes -> RGB in [0, 1]):

* ``RGB``                 : used as is (divided by 255).
* ``L`` and ``1``         : gray copied to the three channels.
* ``P``                   : palette looked up (``RGBA`` first if it has transparency).
* ``LA``, ``PA``, ``RGBA``: alpha is *composited on black*, i.e. ``rgb * alpha``;
  fully transparent pixels become black, opaque ones keep their colour.
* ``I;16*`` and ``I``     : 16-bit gray, divided by 65535 (the maximum of the
  type, not of the image), clipped to [0, 1], so full precision is kept.
* ``F``                   : float gray, assumed to be on the 0..255 scale (like
  PIL's own ``convert("L")``), clipped.
* ``CMYK``, ``YCbCr``, ... : PIL's ``convert("RGB")``.

Resizing is bilinear with antialiasing (``torch.nn.functional.interpolate``),
done in float so 16-bit inputs are not quantised first.  Masks are resized with
nearest neighbour so they stay binary.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .errors import DataError

PathLike = Union[str, "os.PathLike[str]"]

IMAGE_EXTENSIONS: Tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def is_image_name(path: PathLike) -> bool:
    """True if the file name has one of :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def list_image_files(folder: PathLike) -> list:
    """Sorted image files of ``folder``; hidden entries (``.name``) are ignored.

    Raises DataError if the folder holds anything else (a sub-folder, a text
    file, ...), because a stray file in a dataset folder is almost always a
    mistake that would otherwise be silently skipped.
    """
    folder = Path(folder)
    files = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.startswith("."):
            continue
        if not entry.is_file() or not is_image_name(entry):
            kind = "folder" if entry.is_dir() else "file"
            raise DataError(
                f"unexpected {kind} {entry} in image folder {folder}: expected only image files "
                f"with extensions {', '.join(IMAGE_EXTENSIONS)} (hidden files are ignored)"
            )
        files.append(entry)
    return files


def open_image(path: PathLike) -> Image.Image:
    """Open and fully decode an image file with PIL; any failure -> DataError naming it.

    ``Image.open`` is lazy, so ``.load()`` is called inside the ``try`` to catch
    truncated or corrupt pixel data, not only broken headers.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image file {path} does not exist (expected a readable image file)")
    if path.stat().st_size == 0:
        raise DataError(f"image file {path} is empty (0 bytes); expected an image")
    try:
        with Image.open(path) as im:
            im.load()
            return im
    except MemoryError:
        raise
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, zlib.error, ...
        raise DataError(
            f"cannot read image file {path}: it is corrupt, truncated or not an image "
            f"({type(exc).__name__}: {exc})"
        ) from exc


def _to_float_rgb(img: Image.Image) -> np.ndarray:
    """PIL image -> float32 array (H, W, 3) in [0, 1] following the module rules."""
    mode = img.mode
    if mode in _SIXTEEN_BIT:
        gray = np.asarray(img).astype(np.float32) / 65535.0
        return np.repeat(np.clip(gray, 0.0, 1.0)[..., None], 3, axis=2)
    if mode == "F":
        gray = np.clip(np.asarray(img, dtype=np.float32), 0.0, 255.0) / 255.0
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    elif mode in ("LA", "PA", "La", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        rgba = np.asarray(img, dtype=np.float32) / 255.0
        return rgba[..., :3] * rgba[..., 3:4]  # composite on black
    if img.mode in ("L", "1"):
        gray = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.float32) / 255.0


def _resize(x: torch.Tensor, size: Optional[int], mode: str) -> torch.Tensor:
    """Resize a (C, H, W) tensor to (C, size, size); ``size=None`` keeps it."""
    if size is None or tuple(x.shape[-2:]) == (size, size):
        return x
    if mode == "bilinear":
        y = F.interpolate(x[None], size=(size, size), mode="bilinear",
                          align_corners=False, antialias=True)
        return y[0].clamp_(0.0, 1.0)
    return F.interpolate(x[None], size=(size, size), mode="nearest-exact")[0]


def read_image(path: PathLike, size: Optional[int] = 256) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Like :func:`load_image` but also return the original ``(width, height)``."""
    img = open_image(path)
    original = img.size
    try:
        arr = _to_float_rgb(img)
    except MemoryError:
        raise
    except Exception as exc:
        raise DataError(f"cannot convert image file {path} (mode {img.mode}) to RGB: {exc}") from exc
    x = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    return _resize(x, size, "bilinear").float(), original


def load_image(path: PathLike, size: Optional[int] = 256) -> torch.Tensor:
    """Read any supported image as a float tensor.

    Args:
        path: image file (PNG, JPEG, BMP, TIFF, ...).
        size: output side length; ``None`` keeps the original resolution.
    Returns:
        FloatTensor of shape (3, size, size) with values in [0, 1].
    Raises:
        DataError: missing, empty, corrupt, truncated or non-image file.
    """
    return read_image(path, size)[0]


def _mask_to_binary(img: Image.Image, path: Path) -> np.ndarray:
    """PIL mask -> bool array (H, W): value > half of the type's maximum."""
    mode = img.mode
    if mode == "1":
        return np.asarray(img, dtype=bool)
    if mode in _SIXTEEN_BIT:
        return np.asarray(img).astype(np.int64) > 32767
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode == "LA":
        img = img.convert("L")  # alpha dropped
    if img.mode in ("RGB", "RGBA", "RGBX"):
        rgb = np.asarray(img)[..., :3]
        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
            raise DataError(
                f"mask file {path} is a colour image (mode {mode} with different R, G, B values); "
                "expected a single-channel mask (L, 1 or P, or RGB with equal channels)"
            )
        return rgb[..., 0] > 127
    if img.mode == "L":
        return np.asarray(img) > 127
    raise DataError(f"mask file {path} has unsupported mode {mode}; expected L, 1, P, LA, I;16 or gray RGB")


def load_mask(
    path: PathLike,
    size: Optional[int] = 256,
    original_size: Optional[Tuple[int, int]] = None,
    image_path: Optional[PathLike] = None,
) -> torch.Tensor:
    """Read a ground-truth mask as a binary float tensor.

    A pixel counts as anomalous when its value is above half the maximum of its
    type: > 127 for 8-bit masks (so anti-aliased 0/255 edges split at the
    middle), > 32767 for 16-bit, any set pixel for 1-bit masks.

    Args:
        path: mask file; single channel (L, 1, P, LA, I;16) or RGB with equal channels.
        size: output side length; ``None`` keeps the original resolution.
        original_size: ``(width, height)`` of the image the mask belongs to,
            *before* resizing; if given, the mask must have exactly this size.
        image_path: that image's path, only used in error messages.
    Returns:
        FloatTensor of shape (1, size, size) with values in {0, 1}.
    Raises:
        DataError: unreadable mask, colour mask, or size mismatch with its image.
    """
    path = Path(path)
    img = open_image(path)
    if original_size is not None and tuple(img.size) != tuple(original_size):
        raise DataError(
            f"mask {path} has size {img.size[0]}x{img.size[1]} but its image "
            f"{image_path if image_path is not None else '(unknown)'} has size "
            f"{original_size[0]}x{original_size[1]}; a mask must match its image's size (width x height)"
        )
    binary = _mask_to_binary(img, path)
    x = torch.from_numpy(binary.astype(np.float32))[None]
    return _resize(x, size, "nearest")
