from .base import Param, SearchSpace, choice
from .registry import register

SPACE = register(SearchSpace(
    name="joint",
    description="tau_init, truncation length and δ together (each can be off)",
    searched={"tau_init": Param("uniform", low=0.02, high=0.5),
              "truncation_fraction": choice(0.0, 1 / 30, 1 / 15, 1 / 6),
              "delta": choice(0.0, 0.05, 0.1, 0.15)},
    fixed={"spectral_reg": True, "phase2_reg": True},
))
