"""Variance components of a BD-rate, estimated from a pilot's per-image RD points.

Each seed × image of a configuration becomes one number y[c, s, i]: the linear response of
the BD-rate of the mean curves (``analysis.bd``, the verdict's own function) to that
seed × image's curve minus off's mean curve on the same image, in log-rate units (``100 · σ``
≈ a BD-rate in %). The response is the BD-rate's gradient with respect to the test curve's
log rate and PSNR at each λ, taken by central differences at the pilot's mean curves, so a
flat stretch of the curve, where a little PSNR noise would be a large rate shift, counts for
as little as it does in the BD integral. It is defined wherever the verdict's BD-rate is,
which per-image, per-seed BD-rates are not (one seed's curve on one image is often not
monotone at a few hundred steps).

The model behind the planner's simulations (:mod:`analysis.power`)::

    y[c, s, i] = μ_c + u[c, i] + v[c, s] + e[c, s, i]      (u[off, i] = 0: image effects relative to off)

* ``seed_sd``: sd of v, a seed's effect on a whole curve (what an unpaired comparison sees
  on each side); ``seed_pairing``: the correlation of v[c, s] and v[off, s] (the same seed
  shares initial weights and batch order), so ``own_seed_sd = seed_sd·√(1 − pairing)`` is
  the part a paired comparison sees;
* ``image_sd``: sd of u, how differently the configuration and off suit an image;
* ``cell_sd`` and ``cell_pairing``: the seed × image residual and its correlation with off's.

Estimates are two-way ANOVA mean squares (seeds × images) of each configuration's shifts,
of off's and of their paired differences, pooled over the pilot's configurations; each has
a 90 % interval from the χ² law of its mean square (the residual subtracted at its
estimate), with the degrees of freedom of one configuration (configurations share off's
seeds, so pooling them does not add independent ones).

The shape of the seed noise: a pilot with ≥ ``MIN_SHAPE_SEEDS`` seeds shared by off and
every configuration also keeps each seed's effects (``Components.seed_effects``): off's row
mean of its shifts y[off, s, ·] minus their grand mean, and each configuration's row mean
minus off's (the paired difference), centred the same way. :mod:`analysis.simulate` resamples
these whole seeds instead of drawing normal ones, so a seed that is now and then much noisier
(for every configuration at once) is planned as such. Fewer seeds cannot show a shape (one
odd seed in five could be luck or the rule): the planner then keeps normal seed effects.

The shape of the image effects: a pilot with ≥ ``MIN_SHAPE_IMAGES`` images also keeps, per
configuration and image, the paired image effect (``Components.image_effects``): the column
mean of the configuration's shifts minus off's over their shared seeds, centred — the
quantity whose spread ``image_sd`` estimates. :mod:`analysis.simulate` resamples these images
instead of drawing normal ones, so a few extreme images among many ordinary ones (which the
verdict's image-level interval treats very differently from a normal spread of the same
variance) are planned as such. The threshold is 20 so that a typical 24-image pilot (Kodak,
usually the study's own test set) is resampled: its images are the ones the study will see,
and one image is then at most 5 % of the sample; fewer images show too little of a tail, and
the planner keeps normal image effects. Image difficulty (rate and PSNR, shared by every
configuration) stays normal: it moves off and the configurations alike, so the paired
differences barely see it (switched off, the planner's power for a t(3) truth moved by at most
4 points at 3–4 seeds).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats

from .bd import bd_rate_checked
from .errors import AnalysisError

LEVEL = 0.90            # two-sided level of every component's interval
MIN_SHAPE_SEEDS = 10    # pilot seeds from which the planner resamples seed effects instead of drawing normal ones
MIN_SHAPE_IMAGES = 20   # pilot images from which it resamples configuration × image effects instead


@dataclass(frozen=True)
class Components:
    """The pilot's noise, in log-rate units (×100 ≈ BD-rate %); see the module docstring."""

    seed_sd: float
    seed_pairing: float
    image_sd: float
    cell_sd: float
    cell_pairing: float
    image_rate_sd: float = 0.3          # image difficulty (shared by every configuration): log bpp
    image_psnr_sd: float = 1.5          # and PSNR (dB)
    # per pilot seed: off's whole-curve effect, then each configuration's paired difference from it
    # (rows: off, configurations; columns: seeds); empty below MIN_SHAPE_SEEDS seeds: normal seed effects
    seed_effects: tuple[tuple[float, ...], ...] = ()
    # per configuration (rows) and pilot image (columns): its paired image effect; empty below MIN_SHAPE_IMAGES images
    image_effects: tuple[tuple[float, ...], ...] = ()

    @property
    def own_seed_sd(self) -> float:
        """The per-seed noise a paired comparison sees: the part of v[c, s] off's seed s does not share."""
        return self.seed_sd * math.sqrt(1 - self.seed_pairing)

    def with_own_seed_sd(self, own: float) -> "Components":
        """The same noise with the paired (unshared) seed part set to ``own``, the shared part kept."""
        shared = self.seed_sd ** 2 * self.seed_pairing
        total = shared + own ** 2
        return replace(self, seed_sd=math.sqrt(total), seed_pairing=shared / total if total > 0 else 0.0)


@dataclass(frozen=True)
class Estimate:
    """One component's estimate (an sd, log-rate units) with its LEVEL interval and degrees of freedom."""

    value: float
    low: float
    high: float
    df: int


@dataclass(frozen=True)
class Curve:
    """off's mean RD curve: the λs, bpp and PSNR that synthetic points scatter around."""

    lambdas: tuple[float, ...]
    bpp: tuple[float, ...]
    psnr: tuple[float, ...]


@dataclass(frozen=True)
class Pilot:
    """What a pilot says: the components, their intervals, and the base curve to simulate on."""

    components: Components
    estimates: dict[str, Estimate]
    curve: Curve
    n_seeds: int
    n_images: int
    configurations: tuple[str, ...]
    effects: dict[str, float]            # each configuration's BD-rate vs off (%), to first order

    def as_dict(self) -> dict:
        return {**asdict(self), "components": {**asdict(self.components), "own_seed_sd": self.components.own_seed_sd}}


def estimate(points: pd.DataFrame, reference: str, quality: str = "psnr") -> Pilot:
    """Variance components of ``points`` (analysis.compare's table) against ``reference``."""
    off = points[points["configuration"] == reference]
    names = tuple(sorted(set(points["configuration"]) - {reference}))
    seeds = sorted(set(off["seed"]))
    shared_seeds = {name: sorted(set(points.loc[points["configuration"] == name, "seed"]) & set(seeds))
                    for name in names}
    names = tuple(name for name in names if len(shared_seeds[name]) >= 2)
    if len(seeds) < 2 or not names:
        raise AnalysisError("a pilot needs ≥ 2 seeds of off and ≥ 2 of at least one configuration with the same "
                            f"seed numbers (off has {len(seeds)}; the others share "
                            f"{max((len(s) for s in shared_seeds.values()), default=0)} with it)")
    lambdas = sorted(set(off["lmbda"]))
    images = sorted(set(off["image"]))
    if len(images) < 2:
        raise AnalysisError(f"a pilot needs ≥ 2 test images (it has {len(images)})")
    curve = off.groupby("lmbda")[["bpp", quality]].mean().sort_index()
    gradients = [_gradient(points[points["configuration"] == name].groupby("lmbda")[["bpp", quality]].mean()
                           .reindex(curve.index), curve, quality, name) for name in names]
    gradient = np.mean(gradients, axis=0)
    per_image = off.groupby(["lmbda", "image"])[["bpp", quality]].mean()
    shifts = {name: _shifts(points[points["configuration"] == name], per_image, gradient, lambdas, images, quality)
              for name in (reference, *names)}
    return _components(shifts, reference, names, seeds, lambdas, curve, per_image, images, quality)


STEP = 1e-3              # finite-difference step: in log rate, and in the quality's unit (dB)


def _gradient(test: pd.DataFrame, off: pd.DataFrame, quality: str, name: str) -> np.ndarray:
    """[2, λ]: how the BD-rate of the mean curves (analysis.bd: bjontegaard, pchip) moves with the test curve's
    log rate and quality at each λ, in log-rate units (a uniform log-rate shift δ has gradient sum 1)."""
    rate, level = np.log(test["bpp"].to_numpy(dtype=float)), test[quality].to_numpy(dtype=float)
    bd = lambda r, q: bd_rate_checked(off["bpp"], off[quality], np.exp(r), q)   # noqa: E731
    base = bd(rate, level)
    if base.reason:
        raise AnalysisError(f"no BD-rate of '{name}' vs off on the pilot's mean curves ({base.reason}): its noise "
                            "cannot be read as a BD-rate's")
    out = np.zeros((2, len(rate)))
    for axis, values in enumerate((rate, level)):
        for i in range(len(values)):
            up, down = values.copy(), values.copy()
            up[i] += STEP
            down[i] -= STEP
            pair = (bd(up, level), bd(down, level)) if axis == 0 else (bd(rate, up), bd(rate, down))
            if any(r.reason for r in pair):
                raise AnalysisError(f"the BD-rate of '{name}' vs off is undefined a hair away from the pilot's mean "
                                    f"curves ({next(r.reason for r in pair if r.reason)})")
            out[axis, i] = (pair[0].value - pair[1].value) / (2 * STEP)
    return out / (100 + base.value)


def _shifts(rows: pd.DataFrame, off_per_image: pd.DataFrame, gradient: np.ndarray, lambdas: list, images: list,
            quality: str) -> pd.DataFrame:
    """y[seed, image]: the BD-rate's linear response (log-rate units) to this seed × image's curve minus off's
    per-image mean curve."""
    index = pd.MultiIndex.from_frame(rows[["lmbda", "image"]])
    reference = off_per_image.reindex(index)
    if reference.isna().any(axis=None):
        raise AnalysisError(f"configuration '{rows['configuration'].iloc[0]}' has points at a λ or image off lacks")
    g_rate, g_level = (pd.Series(g, index=lambdas).reindex(rows["lmbda"]).to_numpy() for g in gradient)
    y = (g_rate * (np.log(rows["bpp"].to_numpy()) - np.log(reference["bpp"].to_numpy()))
         + g_level * (rows[quality].to_numpy() - reference[quality].to_numpy()))
    table = pd.DataFrame({"seed": rows["seed"].to_numpy(), "image": rows["image"].to_numpy(),
                          "lmbda": rows["lmbda"].to_numpy(), "y": y})
    counts = table.groupby(["seed", "image"])["lmbda"].nunique()
    if (counts < len(lambdas)).any() or set(table["image"]) != set(images):
        raise AnalysisError(f"configuration '{rows['configuration'].iloc[0]}' lacks points for some seed × λ × image")
    return table.groupby(["seed", "image"])["y"].sum().unstack("image")[images]


def _anova(y: np.ndarray) -> tuple[float, float, float]:
    """Mean squares (seeds, images, residual) of a seeds × images table."""
    s, i = y.shape
    grand, rows, cols = y.mean(), y.mean(axis=1), y.mean(axis=0)
    residual = y - rows[:, None] - cols[None, :] + grand
    return (i * float(np.sum((rows - grand) ** 2)) / (s - 1), s * float(np.sum((cols - grand) ** 2)) / (i - 1),
            float(np.sum(residual ** 2)) / max((s - 1) * (i - 1), 1))


def _component(mean_square: float, df: int, minus: float, divisor: float) -> Estimate:
    """sd² = (MS − minus) / divisor with the χ² interval of MS (clipped at 0)."""
    tail = (1 - LEVEL) / 2
    low_ms, high_ms = mean_square * df / stats.chi2.ppf(1 - tail, df), mean_square * df / stats.chi2.ppf(tail, df)
    sd = lambda ms: math.sqrt(max(ms - minus, 0.0) / divisor)   # noqa: E731
    return Estimate(sd(mean_square), sd(low_ms), sd(high_ms), df)


def _components(shifts: dict[str, pd.DataFrame], reference: str, names: tuple, seeds: list, lambdas: list,
                curve: pd.DataFrame, off_per_image: pd.DataFrame, images: list, quality: str) -> Pilot:
    n_images = len(images)
    own, curve_seed, image_means = [], [], []
    for name in names:
        common = [s for s in shifts[name].index if s in shifts[reference].index]
        difference = (shifts[name].loc[common] - shifts[reference].loc[common]).to_numpy()
        own.append(_anova(difference))
        image_means.append(difference.mean(axis=0) - difference.mean())
        curve_seed.append(_anova(shifts[name].to_numpy()))
    off_ms = _anova(shifts[reference].to_numpy())
    n_seeds = min(len(shifts[name]) for name in names)
    diff = np.mean(own, axis=0)                 # pooled over configurations: seeds, images, residual
    each = np.mean([*curve_seed, off_ms], axis=0)
    seed_df, image_df, cell_df = n_seeds - 1, n_images - 1, (n_seeds - 1) * (n_images - 1)
    estimates = {
        # paired seed noise: Var(v_c − v_off) = 2·own²; E[MS] = I·2·own² + residual
        "own_seed_sd": _component(diff[0], seed_df, diff[2], 2 * n_images),
        "seed_sd": _component(each[0], len(seeds) - 1, each[2], n_images),
        "image_sd": _component(diff[1], image_df, diff[2], n_seeds),
        "cell_difference_sd": _component(diff[2], cell_df, 0.0, 1.0),
        "cell_sd": _component(each[2], cell_df, 0.0, 1.0),
    }
    seed_sd = max(estimates["seed_sd"].value, estimates["own_seed_sd"].value)
    cell_sd = max(estimates["cell_sd"].value, estimates["cell_difference_sd"].value / math.sqrt(2))
    off_rate = np.log(off_per_image["bpp"]).unstack("image")[images]
    off_quality = off_per_image[quality].unstack("image")[images]
    components = Components(
        seed_sd=seed_sd,
        seed_pairing=max(1 - estimates["own_seed_sd"].value ** 2 / seed_sd ** 2, 0.0) if seed_sd > 0 else 0.0,
        image_sd=estimates["image_sd"].value, cell_sd=cell_sd,
        cell_pairing=max(1 - estimates["cell_difference_sd"].value ** 2 / (2 * cell_sd ** 2), 0.0) if cell_sd > 0 else 0.0,
        image_rate_sd=float(off_rate.sub(off_rate.mean(axis=1), axis=0).mean(axis=0).std(ddof=1)),
        image_psnr_sd=float(off_quality.sub(off_quality.mean(axis=1), axis=0).mean(axis=0).std(ddof=1)),
        seed_effects=_seed_effects(shifts, reference, names),
        image_effects=_as_rows(image_means) if n_images >= MIN_SHAPE_IMAGES else ())
    effects = {name: 100 * math.expm1(float(shifts[name].to_numpy().mean() - shifts[reference].to_numpy().mean()))
               for name in names}
    base = Curve(tuple(float(x) for x in lambdas), tuple(curve["bpp"].tolist()), tuple(curve[quality].tolist()))
    return Pilot(components, estimates, base, n_seeds, n_images, names, effects)


def _seed_effects(shifts: dict[str, pd.DataFrame], reference: str, names: tuple) -> tuple[tuple[float, ...], ...]:
    """Per seed shared by off and every configuration: off's row mean of its shifts minus their grand mean, and each
    configuration's centred row mean minus off's; () below MIN_SHAPE_SEEDS such seeds (too few to show a shape)."""
    tables = [shifts[name] for name in (reference, *names)]
    common = sorted(set.intersection(*(set(table.index) for table in tables)))
    if len(common) < MIN_SHAPE_SEEDS:
        return ()
    rows = [table.loc[common].to_numpy().mean(axis=1) for table in tables]
    off, *others = (row - row.mean() for row in rows)
    return _as_rows([off, *(other - off for other in others)])


def _as_rows(rows: list[np.ndarray]) -> tuple[tuple[float, ...], ...]:
    """Arrays as nested tuples of floats (Components is frozen and written as JSON)."""
    return tuple(tuple(float(x) for x in row) for row in rows)
