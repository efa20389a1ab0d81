"""HPCM architecture presets: the two official configurations plus a width-scaled tiny one."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ..errors import InputError


@dataclass(frozen=True)
class HPCMConfig:
    """Widths and depths of one HPCM variant.

    ``M`` latent channels (divisible by 8: the s3 schedule splits them into 8 groups),
    ``N`` hyper-latent channels, ``analysis_channels`` the three g_a/g_s stage widths,
    ``analysis_depths`` the PConvRB blocks per stage, ``prior_depths_s12``/``prior_depths_s3``
    the DWConvRB blocks before/after the adaptive scaling of the spatial priors, ``heads``
    the cross-attention heads (must divide 2M).
    """

    M: int = 320
    N: int = 256
    analysis_channels: tuple[int, int, int] = (96, 192, 384)
    analysis_depths: tuple[int, int, int] = (2, 2, 4)
    hyper_depth: int = 3
    prior_depths_s12: tuple[int, int] = (2, 1)
    prior_depths_s3: tuple[int, int] = (3, 2)
    heads: int = 32
    windows: tuple[int, int, int] = (4, 8, 8)

    @property
    def multiple(self) -> int:
        """Image sides must be multiples of this: every scale's grid (latent = image/16,
        s1 = latent/4, s2 = latent/2) must tile into that scale's attention windows."""
        return math.lcm(16 * 4 * self.windows[0], 16 * 2 * self.windows[1], 16 * self.windows[2])


PRESETS: dict[str, HPCMConfig] = {
    "HPCM_Base": HPCMConfig(),
    "HPCM_Large": HPCMConfig(analysis_depths=(2, 2, 8), prior_depths_s12=(2, 2), prior_depths_s3=(4, 3)),
    # Same code, widths scaled down ~10x: for tests and CPU demos, not for RD results.
    "HPCM_Tiny": HPCMConfig(
        M=32, N=32, analysis_channels=(16, 24, 32), analysis_depths=(1, 1, 1), hyper_depth=1,
        prior_depths_s12=(1, 1), prior_depths_s3=(1, 1), heads=4, windows=(2, 4, 4),
    ),
}


def preset(name: str, **overrides) -> HPCMConfig:
    if name not in PRESETS:
        raise InputError(f"unknown model {name!r}; choose one of {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides)
