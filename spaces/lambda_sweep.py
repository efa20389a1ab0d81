from .base import SearchSpace
from .registry import register

SPACE = register(SearchSpace(
    name="lambda",
    description="λ sweep with both regularizers at the paper's defaults",
    searched={},
    fixed={"spectral_reg": True, "tau_init": 0.05, "tau_final": 1.0, "truncation_fraction": 1 / 30,
           "phase2_reg": True, "delta": 0.1},
))
