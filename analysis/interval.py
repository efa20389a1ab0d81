"""BD-rate vs "off" with an interval over training seeds and test images.

Method (stated in report.md by :data:`METHOD`):

* Curve of a configuration: at each λ, the mean over its seeds and over the test images of
  bpp and of the distortion. BD-rate / BD-PSNR of that curve against off's (``analysis.bd``:
  bjontegaard, pchip) is the point estimate.
* Interval: a two-level (seeds × images) delete-one jackknife with a t quantile. Each image
  replicate leaves one test image out of both curves (images are paired); each seed
  replicate leaves seed s out of both curves when seed s of the configuration and of off share
  initial weights and batch order (paired: ``paired``, which analysis.report reads from the
  trials' records; by default, equal seed sets), else out of one curve at a time. The
  variance is the sum of the levels' jackknife variances (which counts the seed × image
  interaction twice: on the wide side), the degrees of freedom
  Welch–Satterthwaite's from each level's n − 1, computed with each level's variance at its
  80 % upper confidence bound (conservative: see :func:`_se_and_df`), and the t interval the
  estimate ± t·SE.
* Skewed image effects: a kind of image on which a configuration is much worse, present in
  one or two of the test images, makes the mean skewed and the SE small exactly when those
  images weigh little; the t interval then calls a null better. So the interval is the union
  of the t interval and an image-level studentised bootstrap (bootstrap-t over the image
  jackknife's pseudo-values, the seed level's variance kept): it widens only on the side the
  images are skewed towards. A kind absent from the test set no interval can see: that is
  :mod:`analysis.verdict`'s image count rule.

Why not the percentile bootstrap this module used before: with 3 seeds it has 10 distinct
seed resamples, underestimates the seed variance by a third and has no small-sample (t)
penalty, so a null was called better/worse far more often than 5 % when training noise
dominates (tests/test_verdict_simulation.py measures the method that replaced it). The
jackknife also costs S + I BD evaluations instead of thousands, which lets the coverage
simulations run in the test suite.

A replicate whose curve is not monotone (or loses overlap) has no BD-rate: the share of
such replicates is reported, never silently dropped; the variance uses the defined ones and
:mod:`analysis.verdict` gives no verdict on such an interval (the missing replicate is the
most influential one).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import stats

from .bd import bd_psnr_checked, bd_rate_checked
from .experiment import Experiment
from .points import validation_points

CONFIDENCE = 0.95
ZERO = 1e-9             # |BD| below this counts as exactly 0 (identical curves)
DF_BOUND = 0.80         # degrees of freedom from each level's variance at this upper confidence bound
BOOTSTRAP_DRAWS = 9999  # image-bootstrap draws (enough for the 0.4 % tails of K = 6)
FAR = 8.0               # an image's pseudo-value this many robust SDs from the median is far from the rest
METHOD = (
    "Point estimate: per λ, bpp and the distortion averaged over seeds and test images; BD-rate (bjontegaard, "
    "{method}) of that curve vs off's. Interval: two-level delete-one jackknife with a t quantile — each replicate "
    "leaves one test image out of both curves (paired images), or one seed out of both curves when seed s of the "
    "configuration and of off start from the same initial weights and see the same batches (paired seeds: read from "
    "the trials' records by analysis.report, from equal seed numbers in a points CSV; otherwise out "
    "of one curve at a time); SE² is the sum of the two levels' jackknife variances, the degrees of freedom "
    "Welch–Satterthwaite's with each level's variance at its 80 % upper confidence bound (conservative when 3 seeds "
    "happen to look quiet); the interval is the union of the estimate ± t·SE and an image-level studentised "
    "bootstrap interval (bootstrap-t over the image jackknife's pseudo-values, 9999 draws), which widens it on the "
    "side a few images skew it to. With 1 seed there is no seed level: the interval then covers test-image sampling "
    "only, not training noise."
)


@dataclass(frozen=True)
class BDInterval:
    """BD-rate (%) vs off with its interval at ``confidence``; NaN plus ``status`` when undefined.

    ``status`` is "" when the interval is defined (the verdict is :mod:`analysis.verdict`'s),
    "no interval" for a point estimate only, else "undefined: <reason>".
    """

    n_seeds: int
    n_images: int
    n_lambdas: int
    bd_rate_vs_off: float
    ci_low: float
    ci_high: float
    bd_psnr_vs_off: float
    status: str
    overlap: float = math.nan
    se: float = math.nan
    df: float = math.nan
    confidence: float = math.nan
    paired_seeds: bool = False
    undefined_share: float = math.nan     # share of all jackknife replicates without a BD-rate
    worst_level: str = ""                 # the level with the largest undefined share ("seed"/"image")
    worst_level_share: float = 0.0
    undefined_reason: str = ""            # the most frequent reason a replicate was undefined
    far_images_above: int = 0             # test images far above the rest (the configuration costs much more there)
    far_images_below: int = 0             # ... far below (it saves much more there)


def bd_interval(points: pd.DataFrame, configuration: str, reference: str, quality: str = "psnr",
                method: str = "pchip", confidence: float = CONFIDENCE, resample: bool = True,
                paired: bool | None = None) -> BDInterval:
    """BD of ``configuration`` vs ``reference`` in a points table (see :mod:`analysis.points`).

    ``resample=False`` gives the point estimate only (status "no interval"). ``paired``: whether
    seed s of both shares initial weights and batch order (None: when both have the same seeds).
    """
    return measure(points, configuration, reference, quality, method, resample, paired).at(confidence)


@dataclass(frozen=True)
class Measured:
    """One configuration's BD-rate and what its interval needs at any confidence level."""

    result: BDInterval                     # at no level yet (confidence NaN)
    t_star: np.ndarray = field(default_factory=lambda: np.empty(0))   # image-bootstrap studentised draws

    def at(self, confidence: float) -> BDInterval:
        """The interval at ``confidence``: the union of the jackknife t interval and the image-level
        studentised bootstrap one (see the module docstring)."""
        r = self.result
        if r.status or math.isnan(r.se):
            return r
        if r.se <= ZERO:       # identical curves up to rounding
            return replace(r, ci_low=r.bd_rate_vs_off, ci_high=r.bd_rate_vs_off, confidence=confidence)
        below = above = float(stats.t.ppf(1 - (1 - confidence) / 2, r.df))
        if len(self.t_star):
            low, high = np.quantile(self.t_star, [(1 - confidence) / 2, 1 - (1 - confidence) / 2])
            below, above = max(below, float(high)), max(above, -float(low))
        return replace(r, ci_low=r.bd_rate_vs_off - below * r.se, ci_high=r.bd_rate_vs_off + above * r.se,
                       confidence=confidence)

    def p_value(self) -> float:
        """Two-sided: the largest 1 − confidence at which :meth:`at`'s interval still covers 0."""
        r = self.result
        if r.status or math.isnan(r.se):
            return math.nan
        if r.se <= ZERO:
            return 1.0 if abs(r.bd_rate_vs_off) <= ZERO else 0.0
        t = r.bd_rate_vs_off / r.se
        p = 2 * float(stats.t.sf(abs(t), r.df))
        if len(self.t_star):
            p = max(p, 2 * min(float(np.mean(self.t_star <= t)), float(np.mean(self.t_star >= t))))
        return min(p, 1.0)


def measure(points: pd.DataFrame, configuration: str, reference: str, quality: str = "psnr", method: str = "pchip",
            resample: bool = True, paired: bool | None = None) -> Measured:
    """The point estimate, the jackknife SE and the image bootstrap of ``configuration`` vs ``reference``."""
    test, off = (_cube(points[points["configuration"] == name], quality) for name in (configuration, reference))
    lambdas = sorted(set(test.lambdas) & set(off.lambdas))
    images = sorted(set(test.images) & set(off.images))
    shape = dict(n_seeds=len(test.seeds), n_images=len(images), n_lambdas=len(lambdas))
    problem = _incomplete(test, off, lambdas, images)
    if problem:
        return Measured(_undefined(shape, problem))
    test, off = test.select(lambdas, images), off.select(lambdas, images)
    rate = bd_rate_checked(*off.curve(), *test.curve(), method=method)
    psnr = bd_psnr_checked(*off.curve(), *test.curve(), method=method)
    if rate.reason:
        return Measured(_undefined(shape, _wording(rate.reason)))
    if not resample:
        return Measured(BDInterval(**shape, bd_rate_vs_off=rate.value, ci_low=math.nan, ci_high=math.nan,
                                   bd_psnr_vs_off=psnr.value, status="no interval", overlap=rate.overlap))

    paired = test.seeds == off.seeds if paired is None else paired and test.seeds == off.seeds
    levels, reasons = {}, {}
    for level, replicates in _replicates(test, off, paired):
        values = []
        for test_curve, off_curve in replicates:
            result = bd_rate_checked(*off_curve, *test_curve, method=method)
            if result.reason:
                reasons[result.reason] = reasons.get(result.reason, 0) + 1
            values.append(result.value)
        levels[level] = np.array(values)
    variances, dfs = _jackknife_variances(list(levels.values()))
    se, df = _se_and_df(variances, dfs)
    total = sum(len(v) for v in levels.values())
    shares = {level: float(np.isnan(v).mean()) for level, v in levels.items()}
    worst = max(shares, key=shares.get) if shares else ""
    image = levels.get("image", np.empty(0))
    t_star, far = np.empty(0), (0, 0)
    if len(image) >= 2 and np.isfinite(image).all() and se > ZERO:
        pseudo = len(image) * rate.value - (len(image) - 1) * image
        t_star, far = _studentised_draws(pseudo, se ** 2 - _variance(image)), _far(pseudo)
    result = BDInterval(**shape, bd_rate_vs_off=rate.value, ci_low=math.nan, ci_high=math.nan,
                        bd_psnr_vs_off=psnr.value, status="", overlap=rate.overlap, se=se, df=df, paired_seeds=paired,
                        undefined_share=sum(int(np.isnan(v).sum()) for v in levels.values()) / total if total else 0.0,
                        worst_level=worst.split(":")[0], worst_level_share=shares.get(worst, 0.0),
                        undefined_reason=_wording(max(reasons, key=reasons.get)) if reasons else "",
                        far_images_above=far[0], far_images_below=far[1])
    return Measured(result, t_star)


def _far(pseudo: np.ndarray) -> tuple[int, int]:
    """Images whose pseudo-value lies more than FAR robust SDs (1.4826 · MAD) above / below the median:
    a kind of image on which the configuration does very differently from the rest."""
    centre = float(np.median(pseudo))
    scale = 1.4826 * float(np.median(np.abs(pseudo - centre)))
    if scale <= ZERO:
        return 0, 0
    return int((pseudo > centre + FAR * scale).sum()), int((pseudo < centre - FAR * scale).sum())


def _studentised_draws(pseudo: np.ndarray, other_variance: float) -> np.ndarray:
    """Bootstrap-t over test images: the image jackknife's pseudo-values resampled with replacement
    (scipy.stats.bootstrap), each draw (mean − estimate) / SE with the image variance recomputed from
    the draw and the seed level's variance kept. Where few images carry a skewed effect, a draw that
    misses them is both far off and narrow: the quantiles then stretch the interval on that side."""
    n, centre = len(pseudo), float(pseudo.mean())

    def studentised(sample: np.ndarray, axis: int = -1) -> np.ndarray:
        variance = sample.var(axis=axis, ddof=1) / n + max(other_variance, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (sample.mean(axis=axis) - centre) / np.sqrt(variance)
        return np.where(variance > ZERO, t, np.nan)     # a draw of one repeated image has no SE: no t

    with warnings.catch_warnings():     # scipy's own interval of the draws is not used (nor its NaN warning)
        warnings.simplefilter("ignore")
        draws = stats.bootstrap((pseudo,), studentised, n_resamples=BOOTSTRAP_DRAWS, method="percentile",
                                vectorized=True, rng=np.random.default_rng(0)).bootstrap_distribution
    draws = np.asarray(draws)
    return draws[np.isfinite(draws)]


def bd_over_epochs(experiment: Experiment, reference: str, method: str = "pchip", quality: str = "psnr") -> pd.DataFrame:
    """BD-rate vs off at every epoch from the seed-averaged per-λ validation metrics (point estimates).

    Every trial that reported the epoch counts, ASHA-stopped ones included (up to where they
    stopped); errored ones do not. Columns: configuration, epoch, n_seeds, bd_rate_vs_off, status.
    """
    columns = ["configuration", "epoch", "n_seeds", "bd_rate_vs_off", "status"]
    trials = experiment.trials[experiment.trials["status"] != "ERROR"]
    rows = []
    for epoch in sorted(experiment.history["epoch"].dropna().unique().tolist()):
        points = validation_points(experiment, trials, epoch=int(epoch))
        if reference not in set(points["configuration"]):
            continue
        for configuration in [reference, *sorted(set(points["configuration"]) - {reference})]:
            result = bd_interval(points, configuration, reference, quality, method, resample=False)
            rows.append([configuration, int(epoch), result.n_seeds,
                         0.0 if configuration == reference else result.bd_rate_vs_off,
                         "reference" if configuration == reference else result.status])
    return pd.DataFrame(rows, columns=columns)


def _replicates(test: "_Cube", off: "_Cube", paired: bool):
    """(level, [(test curve, off curve) per delete-one replicate]) for every level with ≥ 2 units."""
    all_images = np.arange(len(test.images))
    if len(all_images) >= 2:
        yield "image", [(test.curve(images=np.delete(all_images, i)), off.curve(images=np.delete(all_images, i)))
                        for i in all_images]
    if paired:
        seeds = np.arange(len(test.seeds))
        if len(seeds) >= 2:
            yield "seed", [(test.curve(seeds=np.delete(seeds, s)), off.curve(seeds=np.delete(seeds, s))) for s in seeds]
        return
    for side, cube in (("test", test), ("off", off)):
        seeds = np.arange(len(cube.seeds))
        if len(seeds) >= 2:
            yield f"seed:{side}", [(cube.curve(seeds=np.delete(seeds, s)), off.curve()) if side == "test"
                                   else (test.curve(), cube.curve(seeds=np.delete(seeds, s))) for s in seeds]


def _variance(values: np.ndarray) -> float:
    """Delete-one jackknife variance of one level's defined replicates (0 with fewer than 2)."""
    defined = values[np.isfinite(values)]
    n = len(defined)
    return (n - 1) / n * float(np.sum((defined - defined.mean()) ** 2)) if n >= 2 else 0.0


def _jackknife_variances(levels: list[np.ndarray]) -> tuple[list[float], list[int]]:
    """Each level's jackknife variance and its n − 1 (levels with fewer than 2 defined replicates left out)."""
    kept = [values for values in levels if np.isfinite(values).sum() >= 2]
    return [_variance(values) for values in kept], [int(np.isfinite(values).sum()) - 1 for values in kept]


def _se_and_df(variances: list[float], dfs: list[int]) -> tuple[float, float]:
    """SE from the summed delete-one variances of each level, and conservative Welch–Satterthwaite
    degrees of freedom: computed with each level's variance at its upper DF_BOUND confidence bound, so a
    seed variance that 3 seeds happen to underestimate cannot also claim the image level's many degrees
    of freedom (plain Satterthwaite called a null better/worse 13.5 % of the time at 3 seeds, K = 3)."""
    total = sum(variances)
    if total <= 0:
        return 0.0, math.inf
    upper = [v * d / stats.chi2.ppf(1 - DF_BOUND, d) for v, d in zip(variances, dfs)]
    return math.sqrt(total), sum(upper) ** 2 / sum(u ** 2 / d for u, d in zip(upper, dfs))


@dataclass(frozen=True)
class _Cube:
    """One configuration's points as arrays [seed, λ, image]."""

    seeds: list
    lambdas: list
    images: list
    bpp: np.ndarray
    quality: np.ndarray

    def select(self, lambdas: list, images: list) -> "_Cube":
        li = [self.lambdas.index(x) for x in lambdas]
        ii = [self.images.index(x) for x in images]
        return _Cube(self.seeds, lambdas, images, self.bpp[:, li][:, :, ii], self.quality[:, li][:, :, ii])

    def curve(self, seeds: np.ndarray | None = None, images: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per λ, the mean over the given seeds and images (default all) of bpp and of the distortion."""
        seeds = slice(None) if seeds is None else seeds
        images = slice(None) if images is None else images
        return tuple(values[seeds][:, :, images].mean(axis=(0, 2)) for values in (self.bpp, self.quality))


def _cube(rows: pd.DataFrame, quality: str) -> _Cube:
    seeds = sorted(rows["seed"].unique().tolist())
    lambdas = sorted(rows["lmbda"].unique().tolist())
    images = sorted(rows["image"].unique().tolist())
    shape = (len(seeds), len(lambdas), len(images))
    bpp, values = np.full(shape, math.nan), np.full(shape, math.nan)
    index = (rows["seed"].map({s: i for i, s in enumerate(seeds)}).to_numpy(),
             rows["lmbda"].map({x: i for i, x in enumerate(lambdas)}).to_numpy(),
             rows["image"].map({x: i for i, x in enumerate(images)}).to_numpy())
    bpp[index] = rows["bpp"].to_numpy(dtype=float)
    values[index] = rows[quality].to_numpy(dtype=float)
    return _Cube(seeds, lambdas, images, bpp, values)


def _incomplete(test: _Cube, off: _Cube, lambdas: list, images: list) -> str | None:
    if not test.seeds:
        return "no points"
    if not off.seeds:
        return "off has no points"
    if not images:
        return "no test image in common with off"
    for name, cube in (("configuration", test), ("off", off)):
        missing = set(cube.lambdas) ^ set(lambdas) or set(cube.images) ^ set(images)
        if missing:
            return f"{name} lacks points the other has ({sorted(map(str, missing))[0]}, ...): evaluation incomplete?"
        if not (np.isfinite(cube.bpp).all() and np.isfinite(cube.quality).all()):
            return f"{name} has missing or non-finite points (a seed × λ × image not evaluated?)"
    return None


def _wording(reason: str) -> str:
    return reason.replace("anchor curve", "off curve").replace("test curve", "configuration's curve")


def _undefined(shape: dict, reason: str) -> BDInterval:
    return BDInterval(**shape, bd_rate_vs_off=math.nan, ci_low=math.nan, ci_high=math.nan, bd_psnr_vs_off=math.nan,
                      status=f"undefined: {reason}")
