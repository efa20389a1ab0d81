"""Rate-distortion loss: λ·255²·MSE + bpp (MSE models) or λ·(1 − MS-SSIM) + bpp."""
from __future__ import annotations

import math

import torch
from pytorch_msssim import ms_ssim

MS_SSIM_MIN_SIDE = 161  # 5 scales of an 11-tap window


def ms_ssim_db(value: float) -> float:
    """MS-SSIM in dB, −10·log10(1 − MS-SSIM), the usual RD-plot axis."""
    return -10 * math.log10(max(1 - value, 1e-10))


class RateDistortionLoss(torch.nn.Module):
    """Returns a dict of tensors: loss, bpp, y_bpp, z_bpp, mse, psnr (+ ms_ssim).

    Rates are counted over the target's pixels (padding inside the model costs bits
    and is charged to the image, as in the official evaluation).
    """

    def __init__(self, lmbda: float, metric: str = "mse", with_ms_ssim: bool = False):
        super().__init__()
        self.lmbda, self.metric = lmbda, metric
        self.with_ms_ssim = with_ms_ssim or metric == "ms-ssim"

    def forward(self, output: dict, target: torch.Tensor) -> dict[str, torch.Tensor]:
        n, _, h, w = target.shape
        bits = {k: -torch.log2(v.float()).sum() for k, v in output["likelihoods"].items()}
        out = {f"{k}_bpp": b / (n * h * w) for k, b in bits.items()}
        out["bpp"] = sum(out.values())
        x_hat = output["x_hat"].float()
        out["mse"] = torch.mean((x_hat - target) ** 2)
        out["psnr"] = -10 * torch.log10(out["mse"].clamp_min(1e-10))
        if self.with_ms_ssim and min(h, w) >= MS_SSIM_MIN_SIDE:
            out["ms_ssim"] = ms_ssim(x_hat.clamp(0, 1), target, data_range=1.0)
        if self.metric == "ms-ssim":
            if "ms_ssim" not in out:
                raise ValueError(f"MS-SSIM needs images of at least {MS_SSIM_MIN_SIDE} px per side, got {h}x{w}")
            distortion = 1 - out["ms_ssim"]
        else:
            distortion = 255**2 * out["mse"]
        out["loss"] = self.lmbda * distortion + out["bpp"]
        return out
