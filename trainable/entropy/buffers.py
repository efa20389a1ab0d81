"""Loading entropy-coder tables whose size is only known after ``update()``."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

# Buffers of compressai's EntropyBottleneck / GaussianConditional that ``update()`` re-sizes.
COMPRESSAI_TABLE_BUFFERS = ("_quantized_cdf", "_cdf_length", "_offset", "scale_table")


def resize_table_buffers(model: nn.Module, state_dict: Mapping[str, torch.Tensor],
                         leaf_names: tuple[str, ...] = COMPRESSAI_TABLE_BUFFERS) -> None:
    """Re-shape ``model``'s table buffers to those in ``state_dict`` so strict loading accepts
    tables built by ``update()`` (a fresh model has empty ones, or another scale table)."""
    for name, buffer in list(model.named_buffers()):
        prefix, _, leaf = name.rpartition(".")
        value = state_dict.get(name)
        if leaf in leaf_names and value is not None and value.shape != buffer.shape:
            owner = model.get_submodule(prefix) if prefix else model
            owner.register_buffer(leaf, torch.empty_like(value, device=buffer.device))
