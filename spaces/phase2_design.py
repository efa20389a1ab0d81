from .base import SearchSpace, choice
from .registry import register

SPACE = register(SearchSpace(
    name="phase2_design",
    description="Phase 2 design choices: aligner, sign, alignment, scale latents (+ δ = 0)",
    searched={"phase2_aligner": choice("crossfit", "adversarial", "ridge", "joint"),
              "phase2_sign": choice("repel", "attract"), "alignment": choice("subbands", "ll"),
              "scale_latents": choice("full", "new"), "delta": choice(0.0, 0.1)},
    fixed={"phase2_reg": True, "spectral_reg": False},
))
