from .base import SearchSpace

SPACE = SearchSpace(
    name="baseline",
    description="λ sweep with both regularizers off (the reference curve)",
    searched={},
    fixed={"spectral_reg": False, "phase2_reg": False},
)
