"""Device and mixed-precision choice (devices.py), with the GPU mocked where there is none."""
import pytest
import torch

from glance_lite import devices
from glance_lite.devices import amp_dtype_for, resolve_device


def fake_gpus(monkeypatch, count: int, capability: tuple[int, int]):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)


def test_cpu_scores_in_float32_by_default_and_bf16_on_request():
    assert amp_dtype_for(torch.device("cpu")) is None
    assert amp_dtype_for(torch.device("cpu"), "bf16") is torch.bfloat16
    with pytest.raises(ValueError, match="supported: off, bf16"):
        amp_dtype_for(torch.device("cpu"), "fp16")


def test_t4_gets_fp16_and_refuses_bf16(monkeypatch):
    fake_gpus(monkeypatch, 1, (7, 5))  # Colab's free T4
    dev = torch.device("cuda:0")
    assert amp_dtype_for(dev) is torch.float16
    with pytest.raises(ValueError, match="not supported on cuda:0 .supported: off, fp16."):
        amp_dtype_for(dev, "bf16")
    assert amp_dtype_for(dev, "off") is None


def test_ampere_and_newer_get_bf16(monkeypatch):
    fake_gpus(monkeypatch, 1, (9, 0))
    assert amp_dtype_for(torch.device("cuda")) is torch.bfloat16
    assert amp_dtype_for(torch.device("cuda"), "fp16") is torch.float16


def test_unknown_amp_value_lists_the_choices():
    with pytest.raises(ValueError, match="auto, bf16, fp16, off"):
        amp_dtype_for(torch.device("cpu"), "fp8")


def test_devices_that_do_not_exist_are_named(monkeypatch):
    fake_gpus(monkeypatch, 0, (0, 0))
    with pytest.raises(ValueError, match="'cuda' does not exist here; devices here: cpu$"):
        resolve_device("cuda")
    fake_gpus(monkeypatch, 1, (7, 5))
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ValueError, match="'cuda:3' does not exist here; devices here: cpu, cuda:0"):
        resolve_device("cuda:3")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    assert devices.available_devices() == ["cpu", "cuda:0"]
