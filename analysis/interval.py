"""BD-rate vs "off" with a 95 % interval over training seeds and test images.

Method (stated verbatim in report.md by :data:`METHOD`):

* Curve of a configuration: at each λ, the mean over its seeds and over the test images of
  bpp (real bitstreams) and of PSNR (dB). BD-rate / BD-PSNR of that curve against off's
  (``analysis.bd``: bjontegaard, pchip) is the point estimate.
* Interval: two-level percentile bootstrap, ``n_boot`` replicates with a fixed RNG seed.
  Each replicate draws the test images with replacement *once* and uses that same draw for
  the configuration and for off, at every λ and every seed (paired over images: an easy or
  hard image moves both curves together); independently it draws each configuration's
  seeds with replacement (seeds are not paired: after training, seed s of two
  configurations are unrelated models). The replicate recomputes both mean curves and the
  BD values; the interval is the 2.5th and 97.5th percentiles of the replicates.
* Status: "better" when the whole interval is below 0 (fewer bits for the same PSNR),
  "worse" when above 0, else "not significant"; "undefined: <reason>" when the point
  estimate is undefined or more than 10 % of replicates are (non-monotone resampled curve).

With one seed the seed level contributes nothing: the interval then covers test-image
sampling only, not training noise. Resampling both crossed factors counts their
interaction twice, so the interval errs on the wide side.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from .bd import bd_psnr_checked, bd_rate_checked
from .experiment import Experiment
from .points import validation_points

CONFIDENCE = 0.95
N_BOOT = 2000
RNG_SEED = 0
MAX_UNDEFINED = 0.10    # share of replicates allowed to be undefined
ZERO = 1e-9             # |BD| below this counts as exactly 0 (identical curves)
METHOD = (
    "Point estimate: per λ, bpp (real bitstreams) and PSNR averaged over seeds and test images; BD-rate "
    "(bjontegaard, {method}) of that curve vs off's. 95 % interval: two-level percentile bootstrap with "
    "{n_boot} replicates (RNG seed {seed}): each replicate resamples the test images with replacement, the "
    "same draw for the configuration and for off at every λ and seed (paired over images), and resamples each "
    "configuration's seeds with replacement independently (seeds are not paired); the interval is the 2.5th–"
    "97.5th percentile of the replicates' BD-rates. \"better\"/\"worse\": the interval lies entirely below/above "
    "0; otherwise \"not significant\". With 1 seed the interval covers test-image sampling only."
)
TABLE_COLUMNS = ("configuration", "is_off", "n_seeds", "n_images", "n_lambdas", "bd_rate_vs_off", "ci_low",
                 "ci_high", "bd_psnr_vs_off", "bd_psnr_ci_low", "bd_psnr_ci_high", "status", "overlap",
                 "boot_defined")


@dataclass(frozen=True)
class BDInterval:
    """BD-rate (%) and BD-PSNR (dB) vs off with their intervals; NaN plus ``status`` when undefined."""

    n_seeds: int
    n_images: int
    n_lambdas: int
    bd_rate_vs_off: float
    ci_low: float
    ci_high: float
    bd_psnr_vs_off: float
    bd_psnr_ci_low: float
    bd_psnr_ci_high: float
    status: str
    overlap: float = math.nan
    boot_defined: float = math.nan   # share of bootstrap replicates with a defined BD-rate


def bd_interval(points: pd.DataFrame, configuration: str, reference: str, quality: str = "psnr",
                method: str = "pchip", n_boot: int = N_BOOT, confidence: float = CONFIDENCE,
                rng_seed: int = RNG_SEED, resample: bool = True) -> BDInterval:
    """BD of ``configuration`` vs ``reference`` in a points table (see :mod:`analysis.points`).

    ``resample=False`` gives the point estimate only (status "no interval").
    """
    test, off = (_cube(points[points["configuration"] == name], quality) for name in (configuration, reference))
    lambdas = sorted(set(test.lambdas) & set(off.lambdas))
    images = sorted(set(test.images) & set(off.images))
    shape = dict(n_seeds=len(test.seeds), n_images=len(images), n_lambdas=len(lambdas))
    problem = _incomplete(test, off, lambdas, images)
    if problem:
        return _undefined(shape, problem)
    test, off = test.select(lambdas, images), off.select(lambdas, images)
    rate = bd_rate_checked(*off.curve(), *test.curve(), method=method)
    psnr = bd_psnr_checked(*off.curve(), *test.curve(), method=method)
    if rate.reason:
        return _undefined(shape, rate.reason.replace("anchor curve", "off curve").replace("test curve", "configuration's curve"))
    if not resample:
        return BDInterval(**shape, bd_rate_vs_off=rate.value, ci_low=math.nan, ci_high=math.nan,
                          bd_psnr_vs_off=psnr.value, bd_psnr_ci_low=math.nan, bd_psnr_ci_high=math.nan,
                          status="no interval", overlap=rate.overlap)

    rng = np.random.default_rng(rng_seed)
    image_weights = rng.multinomial(len(images), np.full(len(images), 1 / len(images)), size=n_boot)
    curves = [cube.resampled(image_weights, rng) for cube in (test, off)]
    rates, psnrs = np.full(n_boot, math.nan), np.full(n_boot, math.nan)
    reasons: dict[str, int] = {}
    for b in range(n_boot):
        (bpp_t, q_t), (bpp_o, q_o) = ((bpp[b], q[b]) for bpp, q in curves)
        result = bd_rate_checked(bpp_o, q_o, bpp_t, q_t, method=method)
        if result.reason:
            reasons[result.reason] = reasons.get(result.reason, 0) + 1
            continue
        rates[b] = result.value
        psnrs[b] = bd_psnr_checked(bpp_o, q_o, bpp_t, q_t, method=method).value
    defined = float(np.isfinite(rates).mean())
    if 1 - defined > MAX_UNDEFINED:
        first = max(reasons, key=reasons.get).replace("anchor curve", "off curve").replace("test curve", "configuration's curve")
        return _undefined(shape, f"BD-rate undefined in {1 - defined:.0%} of bootstrap resamples ({first})",
                          rate.value, psnr.value)
    tail = 100 * (1 - confidence) / 2
    low, high = np.nanpercentile(rates, [tail, 100 - tail])
    psnr_low, psnr_high = np.nanpercentile(psnrs, [tail, 100 - tail])
    return BDInterval(**shape, bd_rate_vs_off=rate.value, ci_low=float(low), ci_high=float(high),
                      bd_psnr_vs_off=psnr.value, bd_psnr_ci_low=float(psnr_low), bd_psnr_ci_high=float(psnr_high),
                      status=verdict(low, high), overlap=rate.overlap, boot_defined=defined)


def verdict(low: float, high: float) -> str:
    """"better" / "worse" when the interval excludes 0, else "not significant"."""
    if high < -ZERO:
        return "better"
    if low > ZERO:
        return "worse"
    return "not significant"


def bd_table(points: pd.DataFrame, reference: str, quality: str = "psnr", method: str = "pchip",
             n_boot: int = N_BOOT, rng_seed: int = RNG_SEED, resample: bool = True) -> pd.DataFrame:
    """One row per configuration of ``points`` (reference first, at 0): :data:`TABLE_COLUMNS`."""
    rows = []
    for configuration in [reference, *sorted(set(points["configuration"]) - {reference})]:
        is_off = configuration == reference
        if is_off:
            cube = _cube(points[points["configuration"] == reference], quality)
            result = BDInterval(len(cube.seeds), len(cube.images), len(cube.lambdas), 0.0, math.nan, math.nan,
                                0.0, math.nan, math.nan, "reference")
        else:
            result = bd_interval(points, configuration, reference, quality, method, n_boot,
                                 rng_seed=rng_seed, resample=resample)
        rows.append({"configuration": configuration, "is_off": is_off, **asdict(result)})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def bd_over_epochs(experiment: Experiment, reference: str, method: str = "pchip", quality: str = "psnr") -> pd.DataFrame:
    """BD-rate vs off at every epoch from the seed-averaged per-λ validation metrics.

    Every trial that reported the epoch counts, ASHA-stopped ones included (up to where they
    stopped); errored ones do not. Columns: configuration, epoch, n_seeds, bd_rate_vs_off, status.
    """
    trials = experiment.trials[experiment.trials["status"] != "ERROR"]
    epochs = sorted(experiment.history["epoch"].dropna().unique().tolist())
    frames = []
    for epoch in epochs:
        points = validation_points(experiment, trials, epoch=int(epoch))
        if reference not in set(points["configuration"]):
            continue
        table = bd_table(points, reference, quality=quality, method=method, resample=False)
        frames.append(table.assign(epoch=int(epoch))[["configuration", "epoch", "n_seeds", "bd_rate_vs_off", "status"]])
    if not frames:
        return pd.DataFrame(columns=["configuration", "epoch", "n_seeds", "bd_rate_vs_off", "status"])
    return pd.concat(frames, ignore_index=True)


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

    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        return self.bpp.mean(axis=(0, 2)), self.quality.mean(axis=(0, 2))

    def resampled(self, image_weights: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Mean curves [replicate, λ] for the given image counts and freshly drawn seed counts."""
        n_seeds, n_images = len(self.seeds), len(self.images)
        seed_weights = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=len(image_weights))
        scale = n_seeds * n_images
        return tuple(np.einsum("bs,sli,bi->bl", seed_weights, values, image_weights) / scale
                     for values in (self.bpp, self.quality))


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


def _undefined(shape: dict, reason: str, rate: float = math.nan, psnr: float = math.nan) -> BDInterval:
    return BDInterval(**shape, bd_rate_vs_off=rate, ci_low=math.nan, ci_high=math.nan, bd_psnr_vs_off=psnr,
                      bd_psnr_ci_low=math.nan, bd_psnr_ci_high=math.nan, status=f"undefined: {reason}")
