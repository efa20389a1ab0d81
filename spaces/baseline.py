from .base import SearchSpace
from .registry import register

SPACE = register(SearchSpace(
    name="baseline",
    description="λ sweep with both regularizers off (the reference curve)",
    searched={},
    fixed={"spectral_reg": False, "phase2_reg": False},
))
