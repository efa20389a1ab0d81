from .base import SearchSpace, choice
from .registry import register

SPACE = register(SearchSpace(
    name="phase2_delta_ms_ssim",
    description="phase2_delta trained for MS-SSIM (MS-SSIM-scale λs)",
    searched={"delta": choice(0.0, 0.05, 0.1, 0.15)},
    fixed={"phase2_reg": True, "spectral_reg": False, "distance": "l2", "metric": "ms-ssim"},
))
