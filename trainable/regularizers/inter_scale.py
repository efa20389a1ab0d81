"""Phase 2: inter-scale similarity regularisation of HPCM's scale latents.

For each pair of adjacent scales, coarser c (h x w) and finer f (2h x 2w), the finer
latent is brought to c's grid by the Haar DWT and mapped to c's M channels by a
learnable 1x1 aligner A, and the two are compared after normalisation n(.):
    d(c, f) = D( n(c), n(A(DWT(f))) ),
    L_inter = sign * delta * sum_pairs d,   sign = -1 ("repel", the paper's -delta * L2)
                                            or +1 ("attract").
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .haar import haar_dwt


def rms_normalize(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Scale each sample of ``x`` (B, ...) to RMS <= 1 (exactly 1 unless ~0)."""
    ms = x.pow(2).flatten(1).mean(1).view(-1, *([1] * (x.dim() - 1)))
    return x / torch.sqrt(ms + eps)


def l2_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error; in [0, 4] when every sample of a and b has RMS <= 1."""
    return (a - b).pow(2).mean()


def l1_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute error; in [0, 2] when every sample of a and b has RMS <= 1."""
    return (a - b).abs().mean()


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 - cosine similarity along channels (dim 1), averaged over the rest; in [0, 2]."""
    return (1 - F.cosine_similarity(a, b, dim=1)).mean()


class _UnitConv1x1(nn.Module):
    """Bias-free 1x1 convolution whose filters are used at unit L2 norm (one per output channel)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, 1, 1))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Conv2d's default

    def unit_weight(self) -> torch.Tensor:
        return F.normalize(self.weight.flatten(1), dim=1).view_as(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.unit_weight())


def _choose(name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


class InterScaleRegularizer(nn.Module):
    """L_inter over HPCM's scale latents (coarse to fine), with one 1x1 aligner per adjacent pair.

    Options:
      alignment  "subbands" (the paper): LL, LH, HL, HH of f stacked, aligner 4M -> M;
                 "ll": the low-pass band only, aligner M -> M.
      distance   "l2" (mean squared error), "l1" (mean absolute error) or
                 "cosine" (1 - cosine similarity along channels, averaged).
      sign       "repel" (-1, push scales apart, as written in the paper) or "attract" (+1).
      scale_latents  "full" (default): compare whole scale latents, as the paper does.
                 Because HPCM's scales are nested (s2 holds s1's values, s3 holds s2's),
                 part of each comparison is then a latent with itself; "new" multiplies
                 each latent by its mask of positions first coded at that scale, which
                 removes that self-comparison (and needs ``new_masks``).
      delta      weight >= 0; 0 turns the regulariser off (nothing computed, zeros returned).

    Boundedness: maximising a distance ("repel") through a free linear aligner is unbounded
    (the weights grow without limit). Here (1) every aligner filter is used at unit L2 norm,
    so the weights' scale is not a free direction, and (2) both sides are RMS-normalised
    per sample before the distance, so each term is bounded whatever the weights and latents:
    l2 in [0, 4], l1 in [0, 2], cosine in [0, 2]. Hence L_inter >= -delta * bound * (num_scales - 1),
    e.g. -8 delta for l2 over HPCM's three scales. Note that under "repel" the aligner can
    approach the bound on its own by anti-aligning (A -> -A), without changing the latents.

    Args:
        channels: M, the latent channels of every scale.
        num_scales: number of scales passed to forward (HPCM: 3, giving pairs s1_s2, s2_s3).
    """

    def __init__(
        self,
        channels: int,
        delta: float = 0.1,
        alignment: Literal["subbands", "ll"] = "subbands",
        distance: Literal["l2", "l1", "cosine"] = "l2",
        sign: Literal["repel", "attract"] = "repel",
        scale_latents: Literal["full", "new"] = "full",
        num_scales: int = 3,
    ) -> None:
        super().__init__()
        if not delta >= 0:
            raise ValueError(f"delta must be >= 0, got {delta}")
        if num_scales < 2:
            raise ValueError(f"num_scales must be >= 2, got {num_scales}")
        distances = {"l2": l2_distance, "l1": l1_distance, "cosine": cosine_distance}
        signs = {"repel": -1.0, "attract": 1.0}
        self.channels = channels
        self.delta = float(delta)
        self.alignment = _choose("alignment", alignment, ("subbands", "ll"))
        self.distance = _choose("distance", distance, tuple(distances))
        self.sign = _choose("sign", sign, tuple(signs))
        self.scale_latents = _choose("scale_latents", scale_latents, ("full", "new"))
        self._distance = distances[distance]
        self._sign = signs[sign]
        self.pair_names = tuple(f"s{i}_s{i + 1}" for i in range(1, num_scales))
        in_channels = 4 * channels if alignment == "subbands" else channels
        self.aligners = nn.ModuleList(_UnitConv1x1(in_channels, channels) for _ in self.pair_names)

    def forward(
        self, latents: Sequence[torch.Tensor], new_masks: Sequence[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(L_inter scalar, unsigned unweighted distance per pair, detached for logging).

        ``latents``: decoded scale latents coarse to fine, each [B, M, H_i, W_i] with
        H_{i+1} = 2 H_i, W_{i+1} = 2 W_i. ``new_masks``: per scale, broadcastable to its
        latent, 1 where the position was first coded at that scale (used by "new").
        """
        latents = self._checked(latents, new_masks)
        if self.delta == 0:
            zero = latents[0].new_zeros(())
            return zero, {name: zero for name in self.pair_names}
        per_pair = {}
        for name, aligner, coarse, fine in zip(self.pair_names, self.aligners, latents[:-1], latents[1:]):
            bands = haar_dwt(fine)
            aligned = aligner(torch.cat(bands, 1) if self.alignment == "subbands" else bands[0])
            per_pair[name] = self._distance(rms_normalize(coarse), rms_normalize(aligned))
        total = self._sign * self.delta * torch.stack(list(per_pair.values())).sum()
        return total, {name: d.detach() for name, d in per_pair.items()}

    def _checked(
        self, latents: Sequence[torch.Tensor], new_masks: Sequence[torch.Tensor] | None
    ) -> list[torch.Tensor]:
        """Validate shapes; with "new", return the latents masked to their new positions."""
        if len(latents) != len(self.pair_names) + 1:
            raise ValueError(f"expected {len(self.pair_names) + 1} scale latents, got {len(latents)}")
        for y in latents:
            if y.dim() != 4 or y.shape[1] != self.channels:
                raise ValueError(f"scale latents must be [B, {self.channels}, H, W], got {tuple(y.shape)}")
        for coarse, fine in zip(latents[:-1], latents[1:]):
            if fine.shape[-2:] != (2 * coarse.shape[-2], 2 * coarse.shape[-1]):
                raise ValueError(f"each scale must double the previous one, got {tuple(coarse.shape)} -> {tuple(fine.shape)}")
        if self.scale_latents == "full":
            return list(latents)
        if new_masks is None or len(new_masks) != len(latents):
            raise ValueError('scale_latents="new" needs one new-position mask per scale latent')
        return [y * m.to(y.dtype) for y, m in zip(latents, new_masks)]

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, delta={self.delta}, alignment={self.alignment!r}, "
                f"distance={self.distance!r}, sign={self.sign!r}, scale_latents={self.scale_latents!r}")
