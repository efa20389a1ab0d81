"""Small tensor helpers every model shares: padding to the coding multiple, rounding."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round with a straight-through gradient."""
    return (torch.round(x) - x).detach() + x


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad H and W symmetrically up to a multiple (the official test protocol)."""
    h, w = x.shape[-2:]
    dh, dw = -h % multiple, -w % multiple
    return F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2)) if dh or dw else x


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Undo :func:`pad_to_multiple`."""
    h, w = size
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[..., top:top + h, left:left + w]


def padded_size(size: tuple[int, int], multiple: int) -> tuple[int, int]:
    """The size :func:`pad_to_multiple` gives an image of ``size``."""
    return tuple(-(-s // multiple) * multiple for s in size)


def in_weight_format(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``x`` in the memory format of ``weight`` (channels-last models get channels-last inputs)."""
    if weight.is_contiguous(memory_format=torch.channels_last):
        return x.contiguous(memory_format=torch.channels_last)
    return x


def full_precision(device: torch.device):
    """A region where autocast is off: noise, rounding and likelihoods must not run in bf16
    (at |y| >= 32 bf16 steps are 0.25, coarser than the uniform noise they carry)."""
    return torch.autocast(device.type, enabled=False)
