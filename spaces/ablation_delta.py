from .base import SearchSpace, choice
from .registry import register

SPACE = register(SearchSpace(
    name="ablation_delta",
    description="the paper's δ × distance ablation grid (+ δ = 0)",
    searched={"delta": choice(0.0, 0.05, 0.1, 0.15), "distance": choice("l2", "l1", "cosine")},
    fixed={"phase2_reg": True, "spectral_reg": False},
))
