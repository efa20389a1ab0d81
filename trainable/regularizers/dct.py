"""Orthonormal 2-D DCT-II as two matrix products.

With the orthonormal basis C_N[k, n] = a_k cos(pi (2n + 1) k / 2N), a_0 = sqrt(1/N),
a_k = sqrt(2/N), the 2-D transform of an H x W image is X = C_H x C_W^T and, C being
orthogonal, its inverse is x = C_H^T X C_W. The basis matrices are built once per
(size, device, dtype), so a training step costs two batched matmuls.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch


@lru_cache(maxsize=32)
def dct_matrix(n: int, device: torch.device | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Orthonormal DCT-II basis C_n [n, n] (row k is frequency k); built in float64, then cast."""
    k = torch.arange(n, dtype=torch.float64).view(-1, 1)
    i = torch.arange(n, dtype=torch.float64).view(1, -1)
    basis = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    basis[0] /= math.sqrt(2.0)
    return basis.to(device=device, dtype=dtype or torch.get_default_dtype())


def dct2(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D DCT-II over the last two dims of ``x`` (..., H, W)."""
    c_h = dct_matrix(x.shape[-2], x.device, x.dtype)
    c_w = dct_matrix(x.shape[-1], x.device, x.dtype)
    return c_h @ x @ c_w.T


def idct2(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`dct2` (the orthonormal DCT-III) over the last two dims."""
    c_h = dct_matrix(x.shape[-2], x.device, x.dtype)
    c_w = dct_matrix(x.shape[-1], x.device, x.dtype)
    return c_h.T @ x @ c_w
