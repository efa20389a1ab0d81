"""Rate-distortion loss: λ·255²·MSE + bpp (MSE models) or λ·(1 − MS-SSIM) + bpp."""
from __future__ import annotations

import math
import warnings
from functools import lru_cache

import torch
from pytorch_msssim import ms_ssim
from pytorch_msssim.ssim import _fspecial_gauss_1d

MS_SSIM_MIN_SIDE = 161  # 5 scales of an 11-tap window
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)   # Wang et al. 2003, pytorch_msssim's default


@lru_cache(maxsize=16)
def _ms_ssim_constants(channels: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """pytorch_msssim's Gaussian window (11 taps, sigma 1.5) and level weights, made once per
    (device, dtype): left to the library, they are made on the host and copied every call, a
    blocking host → device copy per training step on a GPU."""
    win = _fspecial_gauss_1d(11, 1.5).repeat(channels, 1, 1, 1).to(device, dtype)
    return win, torch.tensor(MS_SSIM_WEIGHTS, dtype=dtype, device=device)


def ms_ssim_on_device(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MS-SSIM of images in [0, 1] (pytorch_msssim), its constants already on ``x``'s device."""
    win, weights = _ms_ssim_constants(x.shape[1], x.device, x.dtype)
    with warnings.catch_warnings():    # the library copies the weights with new_tensor: a device copy, it warns
        warnings.filterwarnings("ignore", "To copy construct from a tensor", UserWarning)
        return ms_ssim(x, y, data_range=1.0, win=win, weights=weights)


def ms_ssim_db(value: float) -> float:
    """MS-SSIM in dB, −10·log10(1 − MS-SSIM), the usual RD-plot axis."""
    return -10 * math.log10(max(1 - value, 1e-10))


class RateDistortionLoss(torch.nn.Module):
    """Returns a dict of tensors: loss, bpp, y_bpp, z_bpp, mse, psnr (+ ms_ssim).

    Rates are counted over the target's pixels (padding inside the model costs bits
    and is charged to the image, as in the official evaluation). MS-SSIM is computed when
    the model trains on it or ``with_ms_ssim`` asks for it (validation), not on every MSE step.
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
            out["ms_ssim"] = ms_ssim_on_device(x_hat.clamp(0, 1), target)
        if self.metric == "ms-ssim":
            if "ms_ssim" not in out:
                raise ValueError(f"MS-SSIM needs images of at least {MS_SSIM_MIN_SIDE} px per side, got {h}x{w}")
            distortion = 1 - out["ms_ssim"]
        else:
            distortion = 255**2 * out["mse"]
        out["loss"] = self.lmbda * distortion + out["bpp"]
        return out
