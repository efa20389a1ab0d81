"""The verdict rule: "better" / "worse" only with the evidence for it.

A configuration's status, first rule that applies:

1. ``incomplete: <why>``: one of its seeds (or one of off's) errored; it is not judged on
   its survivors (a crash is not random with respect to the configuration).
2. ``undefined: <reason>``: no BD-rate (missing points, a non-monotone mean curve, ...).
3. ``partial overlap: ...``: the two curves share less than ``MIN_OVERLAP`` of their quality
   range; the BD-rate is shown, no verdict (it rests on a corner of the curves).
4. ``unreliable: ...``: a jackknife replicate has no BD-rate (a leave-one-out curve that is
   not monotone): the curve rests on that image or seed, so no verdict.
5. ``indicative: <what is short>``: fewer than ``MIN_SEEDS`` seeds (training noise cannot be
   estimated) or fewer test images than :func:`images_needed` for the K configurations
   judged; the interval is shown, no verdict.
6. ``better`` / ``worse`` when the interval lies below / above 0, else ``not significant``;
   but ``indicative`` when one or two test images lie far (``analysis.interval.FAR`` robust
   SDs) on the other side of the rest: a kind of image the configuration does very
   differently on, too rare in this test set for the interval to weigh (a verdict needs none
   or ≥ ``MIN_FAR_IMAGES``).

K (the family) counts the configurations with a defined, reliable BD-rate on ≥ ``MIN_SEEDS``
seeds and ≥ ``MIN_IMAGES`` images, and at least ``searched``: when the
configurations were chosen as the best of N on validation with the same trained models, the
one shown is the best of N tests, so the correction is for N. Multiplicity by Holm's
step-down (the configuration with the smallest p-value is judged at 1 − 0.05/K, the next at
1 − 0.05/(K − 1), ... until one is not significant; each interval is shown at the level it was
judged at), which keeps the family-wise rate of Bonferroni and is never less powerful.

Images: a kind of image (greyscale, text, ...) that makes up ``KIND_SHARE`` of the
population and on which a configuration is much worse can be absent from a small test set,
and then no interval can see it. :func:`images_needed` asks for enough images that, for all
K configurations together, such a kind is in the set with probability ≥ 95 %: 24 for K = 1,
31 for K = 3, 36 for K = 6. Measured: benchmarks/verdict_simulation.py, docs/verdict.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import pandas as pd

from .errors import AnalysisError
from .interval import ZERO, BDInterval, Measured, measure

FAMILY_CONFIDENCE = 0.95
MIN_SEEDS = 3
MIN_IMAGES = 24
KIND_SHARE = 1 / 8      # the smallest kind of image a verdict guards against missing from the test set
MIN_OVERLAP = 0.5       # shared share of the two curves' quality range below which there is no verdict
MIN_FAR_IMAGES = 3      # a verdict against a side with fewer far images than this (but some) is only indicative
MAX_UNDEFINED = 0.0     # share of a level's jackknife replicates without a BD-rate above which: unreliable
KEYS = ("configuration", "seed", "lmbda", "image")
CSV_COLUMNS = ("configuration", "n_seeds", "n_images", "bd_rate_vs_off", "ci_low", "ci_high", "status",
               "undefined_share")
TABLE_COLUMNS = (*CSV_COLUMNS, "is_off", "n_lambdas", "bd_psnr_vs_off", "confidence", "se", "df", "paired_seeds",
                 "overlap", "p_value", "family", "searched")


@dataclass(frozen=True)
class Comparison:
    """A BD table and the points behind it: what the verdict part of a report is written from."""

    points: pd.DataFrame
    table: pd.DataFrame        # bd_table
    reference: str
    method: str = "pchip"
    quality: str = "psnr"


def compare(points: pd.DataFrame, reference: str, quality: str = "psnr", method: str = "pchip",
            incomplete: Mapping[str, str] | None = None, resample: bool = True, searched: int = 0,
            paired: Mapping[str, bool] | None = None) -> Comparison:
    """Every configuration of ``points`` against ``reference`` (see :mod:`analysis.verdict`)."""
    table = bd_table(points, reference, quality=quality, method=method, resample=resample, incomplete=incomplete,
                     searched=searched, paired=paired)
    return Comparison(points[~errored_rows(points)], table, reference, method, quality)


def check_unique(points: pd.DataFrame, name: str = "points") -> None:
    """One line naming the duplicated (configuration, seed, lmbda, image) rows, if any."""
    duplicated = points.duplicated(list(KEYS), keep=False)
    if duplicated.any():
        keys = points.loc[duplicated, list(KEYS)].drop_duplicates()
        named = "; ".join(", ".join(str(v) for v in row) for row in keys.head(3).itertuples(index=False))
        raise AnalysisError(f"{name}: {int(duplicated.sum())} rows share {len(keys)} (configuration, seed, lmbda, "
                            f"image): {named}{'; ...' if len(keys) > 3 else ''}")


def errored_rows(points: pd.DataFrame) -> pd.Series:
    """Rows that mark an errored seed: a non-empty ``error`` (a points CSV's optional column)."""
    if "error" not in points:
        return pd.Series(False, index=points.index)
    return points["error"].notna() & (points["error"].astype(str).str.strip() != "")


def _errored(points: pd.DataFrame) -> dict[str, str]:
    """Configuration → "seed N errored (message)" for the rows :func:`errored_rows` marks."""
    failed = points[errored_rows(points)].drop_duplicates(["configuration", "seed"])
    failed = failed.sort_values(["configuration", "seed"])
    return {name: "; ".join(f"seed {row.seed} errored ({str(row.error).strip()})" for row in rows.itertuples())
            for name, rows in failed.groupby("configuration", sort=True)}


def simultaneous_confidence(k: int) -> float:
    """Each interval's level so that K intervals hold together with FAMILY_CONFIDENCE (Bonferroni)."""
    return 1 - (1 - FAMILY_CONFIDENCE) / max(k, 1)


def images_needed(k: int) -> int:
    """Test images for a verdict on K configurations: each configuration's kind of image (share
    KIND_SHARE) present for all K with probability ≥ FAMILY_CONFIDENCE; never below MIN_IMAGES."""
    absent = 1 - FAMILY_CONFIDENCE ** (1 / max(k, 1))
    return max(MIN_IMAGES, math.ceil(math.log(absent) / math.log(1 - KIND_SHARE)))


def shortfall(n_seeds: int, n_images: int, k: int = 1) -> str:
    """What the evidence lacks for a verdict ("" when nothing): "1 seed, 4 test images"."""
    parts = []
    if n_seeds < MIN_SEEDS:
        parts.append(f"{n_seeds} seed" + ("" if n_seeds == 1 else "s"))
    needed = images_needed(k)
    if n_images < needed:
        parts.append(f"{n_images} test image" + ("" if n_images == 1 else "s")
                     + (f" ({needed} needed to judge {k} configurations at once)" if needed > MIN_IMAGES else ""))
    return ", ".join(parts)


def _barred(result: BDInterval) -> str:
    """Rules 2–4: why this configuration can get no verdict whatever the evidence's size ("" if none)."""
    if result.status:
        return result.status
    if result.overlap < MIN_OVERLAP:
        return (f"partial overlap: the curves share {result.overlap:.0%} of their quality range (a verdict needs "
                f"≥ {MIN_OVERLAP:.0%})")
    if result.worst_level_share > MAX_UNDEFINED:
        return (f"unreliable: {result.worst_level_share:.0%} of the {result.worst_level} jackknife replicates have "
                f"no BD-rate ({result.undefined_reason})")
    return ""


def judge(result: BDInterval, reference_seeds: int, k: int = 1) -> str:
    """The status of one configuration's interval (rules 2–6 of the module docstring)."""
    barred = _barred(result)
    if barred:
        return barred
    short = shortfall(min(result.n_seeds, reference_seeds), result.n_images, k)
    if short:
        return f"indicative: {short}"
    side = "better" if result.ci_high < -ZERO else "worse" if result.ci_low > ZERO else ""
    against = result.far_images_above if side == "better" else result.far_images_below
    if side and 0 < against < MIN_FAR_IMAGES:
        return (f"indicative: {against} test image(s) far on the {'worse' if side == 'better' else 'better'} side of "
                f"the rest (a kind of image the test set holds too few of to judge; a verdict needs none or ≥ "
                f"{MIN_FAR_IMAGES})")
    return side or "not significant"


def bd_table(points: pd.DataFrame, reference: str, quality: str = "psnr", method: str = "pchip",
             resample: bool = True, incomplete: Mapping[str, str] | None = None, searched: int = 0,
             paired: Mapping[str, bool] | None = None, holm: bool = True) -> pd.DataFrame:
    """One row per configuration of ``points`` and of ``incomplete`` (reference first, at 0): TABLE_COLUMNS.

    ``incomplete`` maps a configuration to why it is not judged (an errored seed; rows with a
    non-empty ``error`` column add theirs); when it names the reference, no configuration is
    judged. ``searched``: how many configurations the judged ones were chosen from on validation
    (0: none chosen). ``paired``: per configuration,
    whether its seeds share initial weights and batch order with off's (default: same seed numbers).
    ``holm=False`` judges every interval at the Bonferroni level instead.
    """
    incomplete = {**_errored(points), **(incomplete or {})}
    points = points[~errored_rows(points)]
    check_unique(points)
    if reference in incomplete:
        why = incomplete.pop(reference)
        incomplete.update({name: f"off {why}" for name in set(points["configuration"]) - {reference}})
    names = sorted((set(points["configuration"]) | set(incomplete)) - {reference})
    off = points[points["configuration"] == reference]
    off_seeds = off["seed"].nunique()
    measured = {name: measure(points, name, reference, quality, method, resample, (paired or {}).get(name))
                for name in names if name not in incomplete}
    seeds = {name: min(m.result.n_seeds, off_seeds) for name, m in measured.items()}
    counted = [name for name, m in measured.items() if not _barred(m.result) and not shortfall(seeds[name],
                                                                                               m.result.n_images)]
    k = max(len(counted), searched)
    levels = _levels({name: measured[name] for name in counted
                      if not shortfall(seeds[name], measured[name].result.n_images, len(counted))}, k, holm)
    rows = [{"configuration": reference, "is_off": True, "n_seeds": off_seeds, "n_images": off["image"].nunique(),
             "n_lambdas": off["lmbda"].nunique(), "bd_rate_vs_off": 0.0, "bd_psnr_vs_off": 0.0, "status": "reference"}]
    for name in names:
        if name in incomplete:
            rows.append({"configuration": name, "is_off": False,
                         "n_seeds": points.loc[points["configuration"] == name, "seed"].nunique(),
                         "status": f"incomplete: {incomplete[name]}"})
            continue
        result = measured[name].at(levels.get(name, simultaneous_confidence(k)))
        rows.append({"configuration": name, "is_off": False, **asdict(result),
                     "status": judge(result, off_seeds, len(counted)),
                     "p_value": measured[name].p_value(), "family": k, "searched": searched})
    return pd.DataFrame(rows).reindex(columns=TABLE_COLUMNS)


def _levels(measured: Mapping[str, Measured], k: int, holm: bool) -> dict[str, float]:
    """Holm's step-down as interval levels: by p-value, the j-th is judged at 1 − α/(K − j) while every
    one before it excluded 0; it and the rest at that level once one does not. One whose interval excludes
    0 but that is only indicative (far images) counts as rejected for the step-down: reporting fewer
    verdicts than Holm rejects keeps its family-wise rate."""
    alpha = 1 - FAMILY_CONFIDENCE
    order = sorted(measured, key=lambda name: (measured[name].p_value(), name))
    levels: dict[str, float] = {}
    for j, name in enumerate(order):
        levels[name] = level = 1 - alpha / max(k - j, 1) if holm else simultaneous_confidence(k)
        result = measured[name].at(level)
        if not (result.ci_high < -ZERO or result.ci_low > ZERO):   # (one only indicative still steps down)
            return {**levels, **{other: level for other in order[j + 1:]}}
    return levels


def family_size(table: pd.DataFrame) -> int:
    """K: the configurations judged against off together (those that can get a verdict, at least the number searched)."""
    family = table["family"].dropna()
    return int(family.iloc[0]) if len(family) else 0


def level_of(table: pd.DataFrame) -> float:
    """The lowest confidence of the intervals in ``table`` (NaN when none has one)."""
    levels = table["confidence"].dropna()
    return float(levels.min()) if len(levels) else math.nan
