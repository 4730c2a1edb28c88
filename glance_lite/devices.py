"""Which device and which mixed precision to run on (Colab's T4 included).

`resolve_device("cuda:3")` on a one-GPU machine, or "cuda" without a GPU, fails with one line
naming the devices that exist. `amp_dtype_for(device, amp)` picks the autocast dtype for scoring:

    auto   bfloat16 where the GPU computes it natively (compute capability >= 8.0: A100, H100,
           L4, ...), float16 on older GPUs (a T4 is 7.5: bf16 there is emulated or refused),
           none (float32) on a CPU
    bf16 | fp16   forced; refused with the supported values where the device cannot do it
    off    float32

float16 is safe for the partial convolution: its rescaling factor k*k/sum(M) is at most 49.
"""
from __future__ import annotations

import torch

AMP_CHOICES = ("auto", "bf16", "fp16", "off")


def available_devices() -> list[str]:
    return ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """None -> cuda when available, else cpu; an explicit device must exist."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"unknown device {str(device)!r}; devices here: {', '.join(available_devices())}") from err
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0 or (dev.index or 0) >= n:
            raise ValueError(f"device {str(device)!r} does not exist here; devices here: "
                             f"{', '.join(available_devices())}")
    elif dev.type != "cpu":
        raise ValueError(f"unsupported device {str(device)!r}; devices here: {', '.join(available_devices())}")
    return dev


def supported_amp(device: torch.device) -> list[str]:
    """The amp values the device can run: off always; fp16 on any CUDA GPU; bf16 natively (>= 8.0)
    on GPUs and on CPUs (where autocast supports it)."""
    if device.type != "cuda":
        return ["off", "bf16"]
    major, _ = torch.cuda.get_device_capability(device)
    return ["off", "fp16"] + (["bf16"] if major >= 8 else [])


def amp_dtype_for(device: torch.device, amp: str = "auto") -> torch.dtype | None:
    """The autocast dtype for scoring on `device` (None = float32); see the module docstring."""
    if amp not in AMP_CHOICES:
        raise ValueError(f"unknown amp {amp!r}; expected one of {', '.join(AMP_CHOICES)}")
    ok = supported_amp(device)
    if amp == "auto":
        amp = "off" if device.type != "cuda" else ("bf16" if "bf16" in ok else "fp16")
    if amp not in ok:
        raise ValueError(f"amp {amp!r} is not supported on {device} "
                         f"(supported: {', '.join(ok)})")
    return {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
