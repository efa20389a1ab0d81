"""Steps to quality: Phase 1's claim is speed, so measure the optimizer steps each
configuration needs to reach the validation loss that "off" ends with.

``python -m analysis.convergence STORAGE/NAME`` (a from-scratch search, e.g. preset
``gpu-convergence``) writes ``convergence.csv`` (one row per configuration × seed × λ) and
prints, per configuration and λ, how many curves reached the target and the median steps.

Rules (stated because each changes the figure):

- **Target** per λ: off's final validation loss (the mean over off's seeds of the loss at
  its last evaluation, off trials that trained to the end) × (1 + ``tolerance``), default
  1 %. Every curve, off's own seeds included, is measured against that one number. Without
  the margin the target sits on the flat, noisy end of off's curve, where the crossing step
  is as random as the evaluation noise: on constructed identical curves with 0.3 % noise,
  only 2 of 5 reached it (tests/test_convergence.py).
- **Crossing**: the first evaluation whose loss is ≤ the target; the step is interpolated
  linearly (in step and loss) between it and the evaluation before. A curve whose first
  evaluation is already ≤ the target gets that evaluation's step (nothing earlier to
  interpolate from: an upper bound). The first crossing counts even if the loss rises again.
- **Censoring**: a curve that never reaches the target (or stops early) is censored at its
  last step: its steps-to-quality is unknown but larger, never 0 and never its last step.
  Non-finite losses count as "not reached". A median over seeds treats censored curves as
  +∞, so it is defined only while at least half of the curves reached the target.
- **Speed-up** = off's median steps / the configuration's (> 1: faster than off).

The resolution is the evaluation period (``--steps-per-epoch``); the interpolation assumes
the loss is roughly linear between two evaluations.
"""
from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .cli import ArgumentParser, run
from .errors import AnalysisError
from .experiment import load_experiment

RESULT_FILE = "convergence.csv"
TOLERANCE = 0.01


@dataclass(frozen=True)
class Reach:
    """Where a learning curve first reaches a target loss."""

    step: float          # interpolated step; NaN when censored
    censored: bool       # never reached: more than ``last_step`` steps are needed
    last_step: float


def steps_to_quality(steps: Sequence[float], losses: Sequence[float], target: float) -> Reach:
    """The first step at which ``losses`` (evaluated at ``steps``) reach ``target`` (see the module rules)."""
    s = np.asarray(steps, dtype=float)
    loss = np.asarray(losses, dtype=float)
    if s.shape != loss.shape or s.ndim != 1 or len(s) == 0:
        raise AnalysisError(f"a learning curve needs as many steps as losses (got {s.shape} and {loss.shape})")
    order = np.argsort(s, kind="stable")
    s, loss = s[order], loss[order]
    reached = np.isfinite(loss) & (loss <= target)
    if not reached.any():
        return Reach(math.nan, True, float(s[-1]))
    i = int(np.argmax(reached))
    if i == 0 or not np.isfinite(loss[i - 1]):
        return Reach(float(s[i]), False, float(s[-1]))
    s0, s1, l0, l1 = s[i - 1], s[i], loss[i - 1], loss[i]
    step = s1 if l0 == l1 else s0 + (l0 - target) / (l0 - l1) * (s1 - s0)
    return Reach(float(step), False, float(s[-1]))


def censored_median(steps: Sequence[float], censored: Sequence[bool]) -> float:
    """Median with censored values as +∞; NaN when it falls on a censored one."""
    values = np.sort(np.where(np.asarray(censored, dtype=bool), np.inf, np.asarray(steps, dtype=float)))
    if len(values) == 0:
        return math.nan
    mid = len(values) // 2
    median = values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
    return float(median) if math.isfinite(median) else math.nan


def targets(curves: pd.DataFrame, tolerance: float = TOLERANCE) -> dict[float, float]:
    """λ → off's final validation loss, averaged over off's seeds, × (1 + tolerance) (curves:
    ``is_off, seed, lmbda, step, val_loss``; only off curves that reached their budget)."""
    off = curves[curves["is_off"].astype(bool)]
    if off.empty:
        raise AnalysisError("no finished off curve: steps-to-quality is measured against off's final loss")
    last = off.sort_values("step").groupby(["seed", "lmbda"]).tail(1)
    return {float(k): float(v) * (1 + tolerance) for k, v in last.groupby("lmbda")["val_loss"].mean().items()}


def quality_table(curves: pd.DataFrame, finished_off: pd.Series | None = None,
                  tolerance: float = TOLERANCE) -> pd.DataFrame:
    """One row per configuration × seed × λ: ``target, steps_to_quality, censored, last_step``.
    ``curves`` has ``configuration, is_off, seed, lmbda, step, val_loss`` (one row per evaluation);
    ``finished_off`` (bool per row, default all) says which off rows count for the target."""
    needed = {"configuration", "is_off", "seed", "lmbda", "step", "val_loss"}
    if missing := needed - set(curves.columns):
        raise AnalysisError(f"learning curves lack {', '.join(sorted(missing))}")
    target = targets(curves if finished_off is None else curves[finished_off], tolerance)
    rows = []
    for (conf, is_off, seed, lmbda), curve in curves.groupby(["configuration", "is_off", "seed", "lmbda"], sort=True):
        if float(lmbda) not in target:
            raise AnalysisError(f"λ {lmbda:g} has no finished off curve to take the target from")
        reach = steps_to_quality(curve["step"], curve["val_loss"], target[float(lmbda)])
        rows.append({"configuration": conf, "is_off": bool(is_off), "seed": int(seed), "lmbda": float(lmbda),
                     "target": target[float(lmbda)], "steps_to_quality": reach.step, "censored": reach.censored,
                     "last_step": reach.last_step})
    return pd.DataFrame(rows)


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Per configuration × λ: curves, reached, censoring-aware median steps, speed-up vs off."""
    rows = []
    for (conf, is_off, lmbda), group in table.groupby(["configuration", "is_off", "lmbda"], sort=True):
        rows.append({"configuration": conf, "is_off": is_off, "lmbda": lmbda, "curves": len(group),
                     "reached": int((~group["censored"]).sum()),
                     "median_steps": censored_median(group["steps_to_quality"], group["censored"])})
    out = pd.DataFrame(rows)
    off = out[out["is_off"]].set_index("lmbda")["median_steps"]
    out["speedup_vs_off"] = [off.get(lmbda, math.nan) / m if m and math.isfinite(m) else math.nan
                             for lmbda, m in zip(out["lmbda"], out["median_steps"])]
    return out.sort_values(["lmbda", "is_off", "configuration"], ascending=[True, False, True]).reset_index(drop=True)


def experiment_curves(experiment_dir: str | Path) -> tuple[pd.DataFrame, pd.Series]:
    """The per-λ validation curves of a search (step = the trial's ``global_step`` at each
    evaluation) and which rows belong to off trials that trained to the end."""
    exp = load_experiment(experiment_dir)
    if "global_step" not in exp.progress.columns or "val_loss" not in exp.history.columns:
        raise AnalysisError(f"{experiment_dir}: the trials report no global_step/val_loss")
    steps = exp.progress[["trial_id", "epoch", "global_step"]]
    curves = exp.history.merge(steps, on=["trial_id", "epoch"]).rename(columns={"global_step": "step"})
    finished = curves["is_off"].astype(bool) & (curves["status"] == "TERMINATED")
    return curves, finished


def convergence(experiment_dir: str | Path, tolerance: float = TOLERANCE) -> str:
    curves, finished = experiment_curves(experiment_dir)
    table = quality_table(curves, finished, tolerance)
    path = Path(experiment_dir) / RESULT_FILE
    table.to_csv(path, index=False)
    return f"{summarize(table).to_string(index=False)}\n\nper curve: {path}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m analysis.convergence", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", help="STORAGE/NAME of a search (from scratch, FIFO)")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE,
                        help="target = off's final loss x (1 + tolerance) (default 0.01)")

    def body() -> str:
        args = parser.parse_args(argv)
        if not (math.isfinite(args.tolerance) and args.tolerance >= 0):
            raise AnalysisError(f"--tolerance must be >= 0, got {args.tolerance}")
        return convergence(args.experiment, args.tolerance)

    return run("analysis.convergence", body)


if __name__ == "__main__":
    raise SystemExit(main())
