from .base import SearchSpace, choice
from .registry import register

SPACE = register(SearchSpace(
    name="phase2_delta",
    description="Phase 2 weight δ (0 = off), L2 distance, Phase 1 off (distances: ablation_delta)",
    searched={"delta": choice(0.0, 0.05, 0.1, 0.15)},
    fixed={"phase2_reg": True, "spectral_reg": False, "distance": "l2"},
))
