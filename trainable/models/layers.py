"""Building blocks of HPCM's transforms and context model.

Sub-module names (``branch``, ``pconv``) follow the official implementation so
that released checkpoints load with strict name checking.
"""
from __future__ import annotations

import torch
from torch import nn


def conv1x1(in_ch: int, out_ch: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=1)


def conv2x2_down(in_ch: int, out_ch: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=2, stride=2)


def conv4x4_down(in_ch: int, out_ch: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=4, stride=2, padding=1)


def deconv2x2_up(in_ch: int, out_ch: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(in_ch, out_ch, kernel_size=2, stride=2)


def deconv4x4_up(in_ch: int, out_ch: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(in_ch, out_ch, kernel_size=4, stride=2, padding=1)


class PartialConv3x3(nn.Module):
    """3x3 convolution on the first ``n_conv`` channels only (FasterNet-style partial conv)."""

    def __init__(self, channels: int, n_conv: int):
        super().__init__()
        self.split = (n_conv, channels - n_conv)
        self.pconv = nn.Conv2d(n_conv, n_conv, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head, tail = torch.split(x, self.split, dim=1)
        return torch.cat((self.pconv(head), tail), dim=1)


class PConvRB(nn.Module):
    """Residual block: partial 3x3 conv then a 1x1 MLP (used by g_a/g_s/h_a/h_s)."""

    def __init__(self, channels: int, partial_ratio: int = 4, mlp_ratio: int = 4):
        super().__init__()
        hidden = channels * mlp_ratio
        self.branch = nn.Sequential(
            PartialConv3x3(channels, channels // partial_ratio),
            conv1x1(channels, hidden),
            nn.LeakyReLU(inplace=True),
            conv1x1(hidden, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


class DWConvRB(nn.Module):
    """Residual block: depth-wise 3x3 conv then a 1x1 MLP (used by the spatial priors)."""

    def __init__(self, channels: int, mlp_ratio: int = 2):
        super().__init__()
        hidden = channels * mlp_ratio
        self.branch = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels),
            conv1x1(channels, hidden),
            nn.LeakyReLU(),
            conv1x1(hidden, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)
