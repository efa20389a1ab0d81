"""Learning-rate schedules as a multiplier of the base rate per (0-based) epoch."""
from __future__ import annotations

import math

# The official HPCM schedule over 3000 epochs: 1e-4 until 2750, 3e-5 until 2850,
# 1e-5 until 2950, then 1e-6; kept as fractions of the run so shorter runs decay too.
OFFICIAL_STEPS = ((2750 / 3000, 0.3), (2850 / 3000, 0.1), (2950 / 3000, 0.01))


def lr_factor(schedule: str, epoch: int, epochs: int) -> float:
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * epoch / epochs))
    factor = 1.0
    for start, value in OFFICIAL_STEPS:
        if epoch >= round(start * epochs):
            factor = value
    return factor
