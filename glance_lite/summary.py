"""Layer-by-layer output sizes, to compare a network with the supplementary's tables.

`layer_table(model, *inputs)` runs one forward pass with hooks on the model's named layers and
returns rows `(name, output shape without batch)`. Tests compare these rows with Tab. 1-3 of
the supplementary; the book prints them next to the tables.
"""
from __future__ import annotations

import torch
from torch import nn


def layer_table(model: nn.Module, *inputs: torch.Tensor) -> list[tuple[str, tuple[int, ...]]]:
    """Run `model(*inputs)` once and record each direct child's output shape (batch dim dropped).

    Children that return a tuple (features, mask), as partial convolutions do, report the
    feature shape. Returns `[("Input", shape), (child name, shape), ...]` in execution order.
    """
    rows: list[tuple[str, tuple[int, ...]]] = [("Input", tuple(inputs[0].shape[1:]))]
    hooks = []

    def record(name: str):
        def hook(_module, _inp, out):
            feat = out[0] if isinstance(out, tuple) else out
            rows.append((name, tuple(feat.shape[1:])))
        return hook

    for name, child in model.named_children():
        hooks.append(child.register_forward_hook(record(name)))
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in hooks:
            h.remove()
    return rows


def format_table(rows: list[tuple[str, tuple[int, ...]]]) -> str:
    """Pretty-print rows from `layer_table` as `name  HxWxC` (the supplementary's layout)."""
    lines = []
    for name, shape in rows:
        if len(shape) == 3:
            c, h, w = shape
            size = f"{h}x{w}x{c}"
        else:
            size = "x".join(str(s) for s in shape)
        lines.append(f"{name:<16}{size}")
    return "\n".join(lines)
