"""The verdict rule: "better" / "worse" only with the evidence for it.

A configuration's status, first rule that applies:

1. ``incomplete: <why>``: one of its seeds (or one of off's) errored; it is not judged on
   its survivors (a crash is not random with respect to the configuration).
2. ``undefined: <reason>``: no BD-rate (missing points, a non-monotone mean curve, ...).
3. ``unreliable: ...``: more than ``MAX_UNDEFINED`` of a level's jackknife replicates have
   no BD-rate; the interval is shown but rests on the rest, so no verdict.
4. ``indicative: <what is short>``: fewer than ``MIN_SEEDS`` seeds (training noise cannot be
   estimated) or fewer than ``MIN_IMAGES`` test images; the interval is shown, no verdict.
5. ``better`` / ``worse`` when the simultaneous interval lies below / above 0, else
   ``not significant``.

Multiplicity: the K configurations judged against off at once get simultaneous intervals
(Bonferroni: each at 1 − 0.05/K). Nominally a null is then called better or worse in
≤ 5 % of experiments; measured (tests/test_verdict_simulation.py, README "The verdict
rule"), 3 seeds give a little more when training noise dominates, because the degrees of
freedom are estimated from 3 seeds — still ≤ 10 %, the rule's requirement, at every
setting where a verdict is issued. MIN_SEEDS and MIN_IMAGES were set by those simulations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import pandas as pd

from .interval import ZERO, BDInterval, bd_interval

FAMILY_CONFIDENCE = 0.95
MIN_SEEDS = 3
MIN_IMAGES = 24
MAX_UNDEFINED = 0.05
CSV_COLUMNS = ("configuration", "n_seeds", "n_images", "bd_rate_vs_off", "ci_low", "ci_high", "status",
               "undefined_share")
TABLE_COLUMNS = (*CSV_COLUMNS, "is_off", "n_lambdas", "bd_psnr_vs_off", "confidence", "se", "df", "paired_seeds",
                 "overlap")


@dataclass(frozen=True)
class Comparison:
    """A BD table and the points behind it: what the verdict part of a report is written from."""

    points: pd.DataFrame
    table: pd.DataFrame        # bd_table
    reference: str
    method: str = "pchip"
    quality: str = "psnr"


def compare(points: pd.DataFrame, reference: str, quality: str = "psnr", method: str = "pchip",
            incomplete: Mapping[str, str] | None = None, resample: bool = True) -> Comparison:
    """Every configuration of ``points`` against ``reference`` (see :mod:`analysis.verdict`)."""
    table = bd_table(points, reference, quality=quality, method=method, resample=resample, incomplete=incomplete)
    return Comparison(points, table, reference, method, quality)


def simultaneous_confidence(k: int) -> float:
    """Each interval's level so that K intervals hold together with FAMILY_CONFIDENCE (Bonferroni)."""
    return 1 - (1 - FAMILY_CONFIDENCE) / max(k, 1)


def shortfall(n_seeds: int, n_images: int) -> str:
    """What the evidence lacks for a verdict ("" when nothing): "1 seed, 4 test images"."""
    parts = []
    if n_seeds < MIN_SEEDS:
        parts.append(f"{n_seeds} seed" + ("" if n_seeds == 1 else "s"))
    if n_images < MIN_IMAGES:
        parts.append(f"{n_images} test image" + ("" if n_images == 1 else "s"))
    return ", ".join(parts)


def judge(result: BDInterval, reference_seeds: int) -> str:
    """The status of one configuration's interval (rules 2–5 of the module docstring)."""
    if result.status:
        return result.status
    if result.worst_level_share > MAX_UNDEFINED:
        return (f"unreliable: {result.worst_level_share:.0%} of the {result.worst_level} jackknife replicates have "
                f"no BD-rate ({result.undefined_reason})")
    short = shortfall(min(result.n_seeds, reference_seeds), result.n_images)
    if short:
        return f"indicative: {short}"
    if result.ci_high < -ZERO:
        return "better"
    if result.ci_low > ZERO:
        return "worse"
    return "not significant"


def bd_table(points: pd.DataFrame, reference: str, quality: str = "psnr", method: str = "pchip",
             resample: bool = True, incomplete: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per configuration of ``points`` and of ``incomplete`` (reference first, at 0): TABLE_COLUMNS.

    ``incomplete`` maps a configuration to why it is not judged (an errored seed); when it
    names the reference, no configuration is judged.
    """
    incomplete = dict(incomplete or {})
    if reference in incomplete:
        why = incomplete.pop(reference)
        incomplete.update({name: f"off {why}" for name in set(points["configuration"]) - {reference}})
    names = sorted((set(points["configuration"]) | set(incomplete)) - {reference})
    confidence = simultaneous_confidence(sum(name not in incomplete for name in names))
    off = points[points["configuration"] == reference]
    off_seeds = off["seed"].nunique()
    rows = [{"configuration": reference, "is_off": True, "n_seeds": off_seeds, "n_images": off["image"].nunique(),
             "n_lambdas": off["lmbda"].nunique(), "bd_rate_vs_off": 0.0, "bd_psnr_vs_off": 0.0, "status": "reference"}]
    for name in names:
        if name in incomplete:
            rows.append({"configuration": name, "is_off": False,
                         "n_seeds": points.loc[points["configuration"] == name, "seed"].nunique(),
                         "status": f"incomplete: {incomplete[name]}"})
            continue
        result = bd_interval(points, name, reference, quality, method, confidence, resample)
        rows.append({"configuration": name, "is_off": False, **asdict(result), "status": judge(result, off_seeds)})
    return pd.DataFrame(rows).reindex(columns=TABLE_COLUMNS)


def family_size(table: pd.DataFrame) -> int:
    """K: the configurations judged against off together (not the reference, not the incomplete ones)."""
    return int((~table["is_off"] & ~table["status"].str.startswith("incomplete")).sum())


def level_of(table: pd.DataFrame) -> float:
    """The confidence of each interval in ``table`` (NaN when none has one)."""
    levels = table["confidence"].dropna()
    return float(levels.iloc[0]) if len(levels) else math.nan
