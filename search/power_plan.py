"""``search.run --seeds auto --pilot PILOT --effect E``: the seeds a plan needs, and the power its seeds give.

The study a plan sets up is judged by ``analysis.evaluate`` + ``analysis.report``: off and
the plan's other configurations against off at once (K = every configuration searched, as
``analysis.report`` counts it), on a Kodak-sized 24 test images or the fewest the verdict rule
accepts for K (``analysis.verdict.images_needed``). ``analysis.power``
simulates that verdict with the pilot's noise; this module turns its answer into the plan's
seed count (``auto``) or a line for the dry run.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, replace

from trainable.errors import InputError

from .config import SearchConfig

AUTO = "auto"


def seeds_value(text: str) -> int | str:
    """``--seeds``: a count, or ``auto`` (the smallest count that reaches the target power)."""
    if text == AUTO:
        return AUTO
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number or 'auto', not {text!r}") from None


@dataclass(frozen=True)
class PowerGoal:
    """The pilot to read and the effect the study must detect (``--pilot``, ``--effect``, ``--target-power``)."""

    pilot: str
    effect: float = -5.0
    power: float = 0.8
    images: int | None = None      # None: max(24, the fewest test images a verdict on K configurations needs)
    max_seeds: int = 10
    replicates: int = 100          # simulated studies per size


def goal_from(pilot: str | None, effect: float | None, power: float | None) -> PowerGoal | None:
    """The goal of ``--pilot/--effect/--target-power`` (None without a pilot; the others alone are refused)."""
    if pilot is None:
        if effect is not None or power is not None:
            raise InputError("--effect and --target-power need --pilot (the noise they are judged against)")
        return None
    defaults = PowerGoal(pilot)
    return PowerGoal(pilot, defaults.effect if effect is None else effect, defaults.power if power is None else power)


def judged_together(n_configurations: int) -> int:
    """K of the study's verdicts: every configuration the plan searches besides off (the verdict
    rule counts all searched, not only those evaluated: the winner of N is judged as one of N)."""
    return max(1, n_configurations - 1)


def choose_seeds(goal: PowerGoal, n_configurations: int, seeds: int | None = None) -> tuple[int, str]:
    """(seeds, one line on their power): ``seeds`` as given, or the smallest count reaching ``goal.power``."""
    from analysis.errors import AnalysisError
    from analysis.power import Target, plan, read_pilot
    from analysis.simulate import from_components, simulate_power
    from analysis.variance import estimate

    from analysis.verdict import images_needed

    k = judged_together(n_configurations)
    images = goal.images if goal.images is not None else max(24, images_needed(k))
    target = Target(goal.effect, goal.power, k, (images,), goal.max_seeds, goal.replicates)
    try:
        target.check()
        points, reference = read_pilot(goal.pilot)
        pilot = estimate(points, reference)
    except AnalysisError as exc:
        raise InputError(f"--pilot: {exc}") from None
    if seeds is None:
        chosen = plan(pilot.components, pilot.curve, target).chosen
        if chosen is None:
            raise InputError(f"--seeds auto: no seed count up to {goal.max_seeds} reaches power {goal.power:g} for "
                             f"{goal.effect:+g} % with this pilot's noise ({k} configurations, {images} "
                             "images): give --seeds N to price a size anyway")
    else:
        import numpy as np

        chosen = simulate_power(from_components(pilot.components, pilot.curve), goal.effect, k, seeds, images,
                                target.replicates, np.random.default_rng(target.seed))
    line = (f"power: {chosen.power:.2f} for {goal.effect:+g} % at {chosen.n_seeds} seeds x {images} test images, "
            f"{k} configuration(s) judged together (analysis.power on pilot {goal.pilot}, "
            f"{chosen.replicates} simulated studies; null studies with any verdict {chosen.null_verdicts:.2f})")
    return chosen.n_seeds, line


def apply(config: SearchConfig, goal: PowerGoal | None, auto: bool) -> tuple[SearchConfig, str | None]:
    """``config`` with ``--seeds auto`` resolved, and the power line (None without ``--pilot``)."""
    if goal is None:
        if auto:
            raise InputError("--seeds auto needs --pilot (an experiment folder or points CSV with ≥ 2 seeds of off "
                             "and of a configuration: docs/planning.md)")
        return config, None
    from .plan import make_plan

    plan = make_plan(config)
    n = len(plan.configurations) if plan.configurations is not None else config.num_samples
    seeds, line = choose_seeds(goal, n, None if auto else config.seeds)
    return replace(config, seeds=seeds).validated(), line
