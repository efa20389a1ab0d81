"""Context model pieces: spatial priors and the cross-attention cell of progressive context fusion."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import DWConvRB, conv1x1


class SpatialPrior(nn.Module):
    """Maps (context, decoded latent) [3M] to (scales, means) [2M].

    ``quant_step`` (one of the model's adaptive parameters) rescales the features
    between the two branches, so one prior network serves several coding steps.
    """

    def __init__(self, M: int, depths: tuple[int, int]):
        super().__init__()
        self.branch_1 = nn.Sequential(*[DWConvRB(3 * M) for _ in range(depths[0])])
        self.branch_2 = nn.Sequential(*[DWConvRB(3 * M) for _ in range(depths[1])], conv1x1(3 * M, 2 * M))

    def forward(self, x: torch.Tensor, quant_step: torch.Tensor) -> torch.Tensor:
        return self.branch_2(self.branch_1(x) * quant_step)


class CrossAttentionCell(nn.Module):
    """Window cross-attention from the current step's parameters (queries) to the
    carried context (keys/values): HPCM's progressive context fusion.

    The projections are 1x1 convolutions, so they are applied once on the whole map
    and only the attention itself is computed per window.
    """

    def __init__(self, dim: int, window: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} not divisible by {heads} heads")
        self.heads, self.window = heads, window
        self.conv_q, self.conv_k, self.conv_v, self.conv_out = (conv1x1(dim, dim) for _ in range(4))

    def _windows(self, t: torch.Tensor) -> torch.Tensor:
        b, c, h, w = t.shape
        p, d = self.window, c // self.heads
        t = t.view(b, self.heads, d, h // p, p, w // p, p)
        return t.permute(0, 3, 5, 1, 4, 6, 2).reshape(-1, self.heads, p * p, d)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        p = self.window
        q, k, v = self._windows(self.conv_q(x)), self._windows(self.conv_k(context)), self._windows(self.conv_v(context))
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.view(b, h // p, w // p, self.heads, p, p, c // self.heads)
        out = out.permute(0, 3, 6, 1, 4, 2, 5).reshape(b, c, h, w)
        return out + self.conv_out(x)
