from .base import SearchSpace, choice
from .registry import register

SPACE = register(SearchSpace(
    name="ablation_tau",
    description="the paper's tau_init ablation grid (+ Phase 1 off)",
    searched={"tau_init": choice(0.05, 0.1, 0.2, 0.5), "truncation_fraction": choice(0.0, 1 / 30)},
    fixed={"spectral_reg": True, "phase2_reg": False},
))
