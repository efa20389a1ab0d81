"""Analysis/synthesis transforms g_a, g_s and hyper transforms h_a, h_s of HPCM."""
from __future__ import annotations

from torch import nn

from .config import HPCMConfig
from .layers import PConvRB, conv2x2_down, conv4x4_down, deconv2x2_up, deconv4x4_up


class _Sequential(nn.Module):
    """A ``branch`` Sequential wrapper (the official module layout)."""

    def __init__(self, *layers: nn.Module):
        super().__init__()
        self.branch = nn.Sequential(*layers)

    def forward(self, x):
        return self.branch(x)


def _blocks(channels: int, depth: int) -> list[nn.Module]:
    return [PConvRB(channels) for _ in range(depth)]


def analysis(cfg: HPCMConfig) -> nn.Module:
    """g_a: image -> latent y at 1/16 resolution."""
    c0, c1, c2 = cfg.analysis_channels
    d0, d1, d2 = cfg.analysis_depths
    return _Sequential(
        conv4x4_down(3, c0), *_blocks(c0, d0),
        conv2x2_down(c0, c1), *_blocks(c1, d1),
        conv2x2_down(c1, c2), *_blocks(c2, d2),
        conv2x2_down(c2, cfg.M),
    )


def synthesis(cfg: HPCMConfig) -> nn.Module:
    """g_s: latent y_hat -> image."""
    c0, c1, c2 = cfg.analysis_channels
    d0, d1, d2 = cfg.analysis_depths
    return _Sequential(
        deconv2x2_up(cfg.M, c2), *_blocks(c2, d2),
        deconv2x2_up(c2, c1), *_blocks(c1, d1),
        deconv2x2_up(c1, c0), *_blocks(c0, d0),
        deconv4x4_up(c0, 3),
    )


def hyper_analysis(cfg: HPCMConfig) -> nn.Module:
    """h_a: y -> z at 1/4 of the latent resolution."""
    return _Sequential(
        PConvRB(cfg.M), conv2x2_down(cfg.M, cfg.N),
        *_blocks(cfg.N, cfg.hyper_depth), conv2x2_down(cfg.N, cfg.N),
    )


def hyper_synthesis(cfg: HPCMConfig) -> nn.Module:
    """h_s: z_hat -> (scales, means) hyper-prior for every latent position."""
    return _Sequential(
        deconv2x2_up(cfg.N, cfg.N), *_blocks(cfg.N, cfg.hyper_depth),
        deconv2x2_up(cfg.N, 2 * cfg.M), PConvRB(2 * cfg.M),
    )
