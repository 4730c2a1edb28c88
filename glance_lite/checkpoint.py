"""Safe checkpoints: atomic writes, `weights_only` loading, format and architecture checks.

A checkpoint is a plain dict of tensors, numbers and strings:
    {"format": 1, "arch": ARCH, "package_version": ..., "config": {...}, "phase": ..., "step": ...,
     "models": {name: state_dict}, "optim": optimizer state_dict | None}
It is written to a temporary file in the same folder, flushed to disk and renamed over the old
one, so a run killed mid-write leaves the previous checkpoint intact. It is read with
`torch.load(weights_only=True)`, which refuses arbitrary pickled objects (no code runs on load).
"""
from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path

import torch

from . import __version__

FORMAT = 1
ARCH = "glance-lite/v1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file."""


def save(path: str | Path, payload: dict) -> None:
    """Atomically write `payload` (plus format/arch/version stamps) to `path`."""
    path = Path(path)
    payload = {"format": FORMAT, "arch": ARCH, "package_version": __version__, **payload}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load and validate a checkpoint written by `save`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(f"refusing to load {path}: it contains objects other than tensors and "
                              f"plain containers (weights_only=True): {str(err).splitlines()[0]}") from err
    except Exception as err:
        raise CheckpointError(f"cannot read checkpoint {path} (truncated or not a checkpoint): {err}") from err
    if not isinstance(ckpt, dict) or "format" not in ckpt:
        raise CheckpointError(f"{path} is not a glance_lite checkpoint (no 'format' field)")
    if ckpt["format"] > FORMAT:
        raise CheckpointError(f"{path} has checkpoint format {ckpt['format']}, newer than this "
                              f"glance_lite ({__version__}) understands (format {FORMAT}); upgrade the package")
    if ckpt.get("arch") != ARCH:
        raise CheckpointError(f"{path} holds architecture {ckpt.get('arch')!r}, expected {ARCH!r}")
    return ckpt


def load_state(module: torch.nn.Module, state: dict, path: str | Path, name: str) -> None:
    """`module.load_state_dict(state)` with an error that names the file and the part."""
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: the {name} weights do not fit this architecture: "
                              f"{str(err).splitlines()[0]}") from err
