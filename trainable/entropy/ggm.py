"""Generalized Gaussian entropy model (HPCM codes y and z with shape beta = 1.5)."""
from __future__ import annotations

import scipy.stats
import torch
from compressai.entropy_models.entropy_models import pmf_to_quantized_cdf
from compressai.ops import LowerBound
from torch import nn


class _GGCDF(torch.autograd.Function):
    """CDF of the unit generalized Gaussian, F(v) = (1 + sign(v) P(1/b, |v|^b)) / 2.

    ``torch.special.gammainc`` has no gradient w.r.t. its argument, so the backward
    pass uses the density b / (2 Γ(1/b)) exp(-|v|^b).
    """

    @staticmethod
    def forward(ctx, v: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        abs_pow = v.abs().pow(beta)
        ctx.save_for_backward(abs_pow, beta)
        return (1 + torch.sign(v) * torch.special.gammainc(1 / beta, abs_pow)) / 2

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        abs_pow, beta = ctx.saved_tensors
        density = torch.exp(-abs_pow - torch.lgamma(1 / beta)) * beta / 2
        return grad * density, None


class GeneralizedGaussian(nn.Module):
    """Likelihood of integer-quantized values under a zero-mean generalized Gaussian.

    ``scale_bound`` keeps scales away from 0 (where probabilities collapse) and
    ``likelihood_bound`` keeps log-likelihoods finite; both are lower bounds with
    compressai's straight-through gradient.
    """

    def __init__(self, beta: float = 1.5, scale_bound: float = 0.12, likelihood_bound: float = 1e-9,
                 tail_mass: float = 1e-6, precision: int = 16):
        super().__init__()
        self.register_buffer("beta", torch.tensor([beta]))
        self.scale_lower_bound = LowerBound(scale_bound)
        self.likelihood_lower_bound = LowerBound(likelihood_bound)
        self.tail_mass, self.precision = tail_mass, precision

    def cdf(self, v: torch.Tensor) -> torch.Tensor:
        return _GGCDF.apply(v, self.beta.to(v.device, v.dtype))

    def forward(self, values: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
        # Always in float32: under bf16 autocast the CDF differences would lose the small
        # probabilities that dominate the rate.
        values, scales = values.float(), self.scale_lower_bound(scales.float())
        likelihood = self.cdf((values + 0.5) / scales) - self.cdf((values - 0.5) / scales)
        return self.likelihood_lower_bound(likelihood)

    @torch.no_grad()
    def quantized_cdfs(self, scales: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One quantized CDF table per scale, as compressai's rANS coder expects them.

        Each table covers the central 1 - tail_mass of the distribution; the tail
        mass goes to an escape symbol, so out-of-table values still round-trip
        (compressai's coder codes them with bypass bits).
        """
        # built on the host, where the rANS coder reads them: the bound comes to the scales
        scales = scales.detach().float().cpu().reshape(-1)
        scales = torch.max(scales, self.scale_lower_bound.bound.cpu())
        beta = float(self.beta)
        multiplier = -scipy.stats.gennorm.ppf(self.tail_mass / 2, beta)
        centers = torch.ceil(scales * multiplier).int()
        lengths = 2 * centers + 1
        samples = torch.arange(int(lengths.max())).float() - centers[:, None].float()
        upper = self.cdf((samples + 0.5) / scales[:, None])
        lower = self.cdf((samples - 0.5) / scales[:, None])
        pmf = upper - lower
        tail = lower[:, :1] + (1 - upper[:, -1:])
        table = torch.zeros(len(scales), int(lengths.max()) + 2, dtype=torch.int32)
        for i, n in enumerate(lengths.tolist()):
            cdf = pmf_to_quantized_cdf(torch.cat((pmf[i, :n], tail[i])), self.precision)
            table[i, : cdf.numel()] = cdf
        return table, lengths + 2, -centers
