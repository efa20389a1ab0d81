"""Orthonormal single-level 2-D Haar DWT.

Each 2x2 block [[a, b], [c, d]] maps to
    LL = (a + b + c + d) / 2   low-pass in both directions
    LH = (a + b - c - d) / 2   low-pass along W, high-pass along H (horizontal edges)
    HL = (a - b + c - d) / 2   high-pass along W, low-pass along H (vertical edges)
    HH = (a - b - c + d) / 2   high-pass in both directions
The 4x4 matrix of these rows is orthogonal, so the transform preserves energy:
sum(x^2) = sum(LL^2 + LH^2 + HL^2 + HH^2).
"""
from __future__ import annotations

import torch


def haar_dwt(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(LL, LH, HL, HH) of ``x`` (..., H, W) with even H, W; each (..., H/2, W/2)."""
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        raise ValueError(f"haar_dwt needs even height and width, got {h}x{w}")
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    return (a + b + c + d) / 2, (a + b - c - d) / 2, (a - b + c - d) / 2, (a - b - c + d) / 2
