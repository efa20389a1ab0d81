"""Phase 1: intra-scale frequency truncation of the training images.

For the first epochs the input x is low-pass filtered in the DCT domain,
    x_tau = IDCT( DCT(x) * M_tau ),   M_tau(u, v) = max(0, (tau - r) / tau),
    r = sqrt((u / H)^2 + (v / W)^2),  u = 0..H-1, v = 0..W-1,
with tau rising over the epochs, so the codec first fits the low frequencies
that dominate rate and distortion and then sees ever finer detail.

Since r reaches sqrt(((H-1)/H)^2 + ((W-1)/W)^2), just under sqrt(2), the mask still
attenuates high frequencies at tau = 1 (M = 0 for r >= 1): moving to raw images after
Phase 1 is a step change in the input, which the training loop reports.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .dct import dct2, idct2


def radial_mask(
    h: int, w: int, tau: float, device: torch.device | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """M_tau [h, w]: 1 at DC, falling linearly in normalised radius r, 0 for r >= tau."""
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    u = torch.arange(h, device=device, dtype=torch.float32).view(-1, 1) / h
    v = torch.arange(w, device=device, dtype=torch.float32).view(1, -1) / w
    r = torch.sqrt(u**2 + v**2)
    return ((tau - r) / tau).clamp(min=0).to(dtype or torch.get_default_dtype())


def truncate(x: torch.Tensor, tau: float) -> torch.Tensor:
    """Low-pass ``x`` (B, C, H, W) with the radial DCT mask M_tau (same shape out)."""
    mask = radial_mask(x.shape[-2], x.shape[-1], tau, device=x.device, dtype=x.dtype)
    return idct2(dct2(x) * mask)


@dataclass(frozen=True)
class TauSchedule:
    """Linear tau ramp of Phase 1 over 0-based epochs.

    Epoch 0 uses ``tau_init`` and epoch ``truncation_epochs - 1`` uses ``tau_final``
    (a single truncation epoch uses ``tau_init``). From epoch ``truncation_epochs`` on
    Phase 1 is over: ``active`` is False and ``tau`` is None, meaning "train on raw
    images" rather than any tau, because no tau <= sqrt(2) leaves the image unchanged.
    ``truncation_epochs = 0`` disables Phase 1.
    """

    tau_init: float = 0.05
    tau_final: float = 1.0
    truncation_epochs: int = 100

    def __post_init__(self) -> None:
        if not 0 < self.tau_init <= 1:
            raise ValueError(f"tau_init must be in (0, 1], got {self.tau_init}")
        if not self.tau_init <= self.tau_final <= math.sqrt(2):
            raise ValueError(f"tau_final must be in [tau_init, sqrt(2)], got {self.tau_final}")
        if self.truncation_epochs < 0:
            raise ValueError(f"truncation_epochs must be >= 0, got {self.truncation_epochs}")

    def active(self, epoch: int) -> bool:
        """Whether 0-based ``epoch`` trains on truncated images."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        return epoch < self.truncation_epochs

    def tau(self, epoch: int) -> float | None:
        """tau for 0-based ``epoch``, or None once Phase 1 is over."""
        if not self.active(epoch):
            return None
        if self.truncation_epochs == 1:
            return self.tau_init
        return self.tau_init + (self.tau_final - self.tau_init) * epoch / (self.truncation_epochs - 1)
