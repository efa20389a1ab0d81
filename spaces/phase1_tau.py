from .base import Param, SearchSpace, choice
from .registry import register

SPACE = register(SearchSpace(
    name="phase1_tau",
    description="Phase 1 tau_init and truncation length (fraction 0 = off), Phase 2 off",
    searched={"tau_init": Param("uniform", low=0.02, high=0.5),
              "truncation_fraction": choice(0.0, 1 / 30, 1 / 15, 1 / 6)},
    fixed={"spectral_reg": True, "phase2_reg": False},
))
