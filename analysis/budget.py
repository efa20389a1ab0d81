"""Why a configuration has no BD-rate, and what budget would give it one: one line each.

A BD-rate needs each mean test curve to rise, in rate and in quality, from each λ to the next,
and the two curves to share enough of their quality range. When a curve does not rise, the line
names the first λ step that fails, the change across it with its standard error over the test
seed × image cells, and what would fix it:

* the budget: λ models separated by more than that noise. The validation history gives how fast
  this step's gap grew per training step over the last half of the run; where it grew, the line
  extrapolates (linearly, and says so) the steps per λ model at which the gap reaches two SEs;
  where it did not grow, more steps at this schedule will not separate the models;
* or λs further apart (``--lambdas``), which needs no more training.

A curve the report only has validation points for gets no line: there is no test SE to compare.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .points import mean_curve

TITLE = "### Why no BD-rate, and what budget would give one"
SEPARATION = 2.0        # a λ step is resolved when its mean change exceeds this many standard errors


@dataclass(frozen=True)
class Step:
    """The first adjacent λ pair whose mean curve does not rise on ``axis``."""

    low: float               # λ
    high: float
    axis: str                # "bpp" or the quality column
    before: float            # the mean curve's value at each λ
    after: float
    se: float                # standard error of the change over seed × image cells (log rate for bpp)
    cells: int


def failing_step(points: pd.DataFrame, configuration: str, quality: str) -> Step | None:
    """The first λ step where ``configuration``'s mean curve does not rise in bpp or quality (None: it rises)."""
    curve = mean_curve(points, configuration, quality)
    for k in range(len(curve) - 1):
        for axis in ("bpp", quality):
            before, after = float(curve[axis].iloc[k]), float(curve[axis].iloc[k + 1])
            if not after > before:
                low, high = float(curve["lmbda"].iloc[k]), float(curve["lmbda"].iloc[k + 1])
                se, cells = _change_se(points, configuration, axis, low, high)
                return Step(low, high, axis, before, after, se, cells)
    return None


def _change_se(points: pd.DataFrame, configuration: str, axis: str, low: float, high: float) -> tuple[float, int]:
    """SE of the mean change from λ ``low`` to ``high`` over the (seed, image) cells that have both."""
    rows = points[points["configuration"] == configuration]
    values = rows.pivot_table(index=["seed", "image"], columns="lmbda", values=axis, aggfunc="mean")[[low, high]]
    values = np.log(values) if axis == "bpp" else values
    change = (values[high] - values[low]).dropna()
    return (float(change.std(ddof=1) / math.sqrt(len(change))) if len(change) >= 2 else math.nan), len(change)


def validation_growth(history: pd.DataFrame, configuration: str, step: Step) -> tuple[float, float] | None:
    """(last gap, growth per epoch) of this step on validation: the gap between the two λ models' mean
    ``val_<axis>`` (log for bpp) per epoch, the growth a least-squares slope over the last half of the epochs."""
    column = f"val_{step.axis}"
    rows = history[(history["configuration"] == configuration) & history["lmbda"].isin([step.low, step.high])]
    if column not in rows or rows.empty:
        return None
    table = rows.groupby(["epoch", "lmbda"])[column].mean().unstack("lmbda").dropna()
    if step.low not in table or step.high not in table or len(table) < 2:
        return None
    table = np.log(table) if step.axis == "bpp" else table
    gap = (table[step.high] - table[step.low]).sort_index()
    recent = gap.iloc[len(gap) // 2:] if len(gap) >= 4 else gap
    slope = float(np.polyfit(recent.index.to_numpy(dtype=float), recent.to_numpy(), 1)[0])
    return float(gap.iloc[-1]), slope


def why_no_bd_rate(points: pd.DataFrame, history: pd.DataFrame, configuration: str, quality: str,
                   steps_per_epoch: int | None, steps: int | None) -> str | None:
    """One line: the step where ``configuration``'s mean test curve does not rise and what budget would make it
    rise (None when it rises)."""
    step = failing_step(points, configuration, quality)
    if step is None:
        return None
    unit = "log bpp" if step.axis == "bpp" else ("dB" if quality in ("psnr", "ms_ssim_db") else "")
    label = "bpp" if step.axis == "bpp" else ("PSNR" if quality == "psnr" else "MS-SSIM (dB)")
    needed = SEPARATION * step.se
    spec = ".3f" if step.axis == "bpp" else ".2f"
    text = (f"`{configuration}`: its mean test curve does not rise from λ {step.low:g} to {step.high:g} ({label} "
            f"{step.before:{spec}} → {step.after:{spec}}; SE of the change {step.se:.3f} {unit} over {step.cells} seed × image "
            f"cells). What would give a BD-rate: λ models separated by more than {needed:.3f} {unit} there")
    growth = validation_growth(history, configuration, step)
    trained = f" (this run: {steps} steps per λ model)" if steps else ""
    if growth is None or steps_per_epoch is None:
        return text + f", i.e. more training{trained}, or λs further apart (--lambdas)."
    last, per_epoch = growth
    if last >= needed:
        return (text + f"; on validation these λ models are already {last:+.3f} {unit} apart: the test images do not "
                "show it, more test images (or seeds) would.")
    if per_epoch <= 0 or not math.isfinite(needed):
        return (text + f"; on validation this gap did not grow over the last half of training ({last:+.3f} {unit} at "
                f"the end{trained}): more steps at this schedule will not do it; λs further apart (--lambdas) may.")
    more = max(needed - last, 0.0) / (per_epoch / steps_per_epoch)
    return (text + f"; on validation it grew {1000 * per_epoch / steps_per_epoch:+.4f} {unit} per 1000 steps to "
            f"{last:+.3f} {unit}{trained}: about {_round(more)} more steps per λ model at that rate (a linear "
            "extrapolation), or λs further apart (--lambdas).")


def trial_steps(trials: pd.DataFrame) -> tuple[int | None, int | None]:
    """(steps per epoch, steps per λ model of the longest trial) from the trials' records (None: not recorded)."""
    per_epoch = trials.get("config/steps_per_epoch", pd.Series(dtype=float)).dropna()
    steps_per_epoch = int(per_epoch.max()) if len(per_epoch) else None
    epochs = trials.get("epochs_run", pd.Series(dtype=float)).dropna()
    return steps_per_epoch, (int(epochs.max()) * steps_per_epoch if steps_per_epoch and len(epochs) else None)


def section(points: pd.DataFrame, history: pd.DataFrame, table: pd.DataFrame, reference: str, quality: str,
            steps_per_epoch: int | None, steps: int | None) -> str:
    """The report's "Why no BD-rate" paragraph: a line per configuration without one ("" when all have one)."""
    lines = []
    for row in table.itertuples():
        undefined = str(row.status).startswith("undefined")
        if not (undefined or row.configuration == reference):
            continue
        line = why_no_bd_rate(points, history, row.configuration, quality, steps_per_epoch, steps)
        if line is None and undefined:
            line = f"`{row.configuration}`: {str(row.status).removeprefix('undefined: ')}."
        if line:
            lines.append(f"- {line}")
    if not lines:
        return ""
    return "\n".join([TITLE, "", *lines])


def _round(steps: float) -> str:
    """Two significant figures: an extrapolation is not more precise than that."""
    return f"{float(f'{steps:.2g}'):,.0f}" if steps >= 1 else "0"
