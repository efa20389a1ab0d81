"""Phase 1: intra-scale frequency truncation of the training images.

For the first optimizer steps the input x is low-passed in the DCT domain,
    x_tau = IDCT( DCT(x) * M(r) ),   r = sqrt((u / H)^2 + (v / W)^2),  u, v = DCT indices,
and the low-passed image is both the input and the distortion target, so the codec first
fits the low frequencies that dominate rate and distortion, then ever finer detail.
tau rises linearly *per optimizer step* from ``tau_init`` (first Phase-1 step) to
``tau_final`` (last Phase-1 step); p in [0, 1] is the progress through Phase 1.

Masks (``--phase1-mask``, one decorated function each):

* ``seed``: M = max(0, (tau - r) / tau), as in the seed's train.py. At tau = 1 it still
  attenuates every non-DC coefficient (mean 0.26, 21 % zeroed), so the switch to raw
  images after Phase 1 is a jump of the input distribution. Kept for reproduction.
* ``full`` (default): a soft low-pass whose cutoff is tau itself (the logged value), rising
  from ``tau_init`` to ``tau_final``, while its soft edge of width tau (1 - p) narrows from the
  seed's (the first step *is* the seed's mask) to a hard edge: M = clip((tau - r) / (tau (1 - p)), 0, 1).
  The last Phase-1 step passes every coefficient with r < tau_final unchanged: with the
  paper's tau_final = 1 that is all but the corner beyond the unit circle (256² crops of the
  sample images: 37-44 dB against the raw crop, the seed's mask 29-35 dB), and
  tau_final = sqrt(2) ends on the identity.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .dct import dct2, idct2
from .registry import registrar

MAX_RADIUS = math.sqrt(2)
Mask = Callable[[torch.Tensor, float, float], torch.Tensor]
MASKS: dict[str, Mask] = {}

register_mask = registrar(MASKS)   # register_mask(name)(fn): fn(r, tau, progress) -> M


@register_mask("seed")
def seed_mask(r: torch.Tensor, tau: float, progress: float) -> torch.Tensor:
    return ((tau - r) / tau).clamp(min=0)


@register_mask("full")
def full_spectrum_mask(r: torch.Tensor, tau: float, progress: float) -> torch.Tensor:
    edge = tau * (1 - progress)
    if edge <= 0:
        return (r < tau).to(r.dtype)
    return ((tau - r) / edge).clamp(0, 1)


def dct_radius(h: int, w: int, device: torch.device | None = None) -> torch.Tensor:
    """r [h, w] = sqrt((u/h)^2 + (v/w)^2) of every DCT coefficient."""
    u = torch.arange(h, device=device, dtype=torch.float32).view(-1, 1) / h
    v = torch.arange(w, device=device, dtype=torch.float32).view(1, -1) / w
    return torch.sqrt(u**2 + v**2)


def radial_mask(h: int, w: int, tau: float, device: torch.device | None = None,
                dtype: torch.dtype | None = None, kind: str = "seed", progress: float = 0.0) -> torch.Tensor:
    """M [h, w] of mask ``kind`` at ``tau`` and Phase-1 ``progress``."""
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    if kind not in MASKS:
        raise ValueError(f"phase1 mask must be one of {', '.join(MASKS)}, got {kind!r}")
    return MASKS[kind](dct_radius(h, w, device), tau, progress).to(dtype or torch.get_default_dtype())


def truncate(x: torch.Tensor, tau: float, kind: str = "seed", progress: float = 0.0) -> torch.Tensor:
    """Low-pass ``x`` (B, C, H, W) with the radial DCT mask (same shape out)."""
    mask = radial_mask(x.shape[-2], x.shape[-1], tau, x.device, x.dtype, kind, progress)
    return idct2(dct2(x) * mask)


@dataclass(frozen=True)
class TauSchedule:
    """Linear tau ramp over the 0-based optimizer steps of Phase 1.

    Step 0 uses ``tau_init``, step ``steps - 1`` uses ``tau_final``; from step ``steps`` on
    Phase 1 is over (``active`` False, ``tau`` None: train on raw images). A one-step
    Phase 1 has progress 1 (tau_final). ``steps = 0`` disables Phase 1.
    """

    tau_init: float = 0.05
    tau_final: float = 1.0
    steps: int = 100

    def __post_init__(self) -> None:
        if not 0 < self.tau_init <= 1:
            raise ValueError(f"tau_init must be in (0, 1], got {self.tau_init}")
        if not self.tau_init <= self.tau_final <= MAX_RADIUS:
            raise ValueError(f"tau_final must be in [tau_init, sqrt(2)], got {self.tau_final}")
        if self.steps < 0:
            raise ValueError(f"Phase 1 steps must be >= 0, got {self.steps}")

    def active(self, step: int) -> bool:
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        return step < self.steps

    def progress(self, step: int) -> float:
        """p in [0, 1]: 0 on the first Phase-1 step, 1 on the last."""
        return 1.0 if self.steps <= 1 else min(step, self.steps - 1) / (self.steps - 1)

    def tau(self, step: int) -> float | None:
        if not self.active(step):
            return None
        return self.tau_init + (self.tau_final - self.tau_init) * self.progress(step)


class FrequencyTruncation:
    """Phase 1 as the trainer uses it: ``batch(x, step)`` is x low-passed at that step's tau
    (or x itself once Phase 1 is over)."""

    def __init__(self, schedule: TauSchedule, mask: str = "full") -> None:
        if mask not in MASKS:
            raise ValueError(f"phase1 mask must be one of {', '.join(MASKS)}, got {mask!r}")
        self.schedule, self.mask = schedule, mask

    def batch(self, x: torch.Tensor, step: int) -> torch.Tensor:
        tau = self.schedule.tau(step)
        if tau is None:
            return x
        return truncate(x, tau, self.mask, self.schedule.progress(step))
