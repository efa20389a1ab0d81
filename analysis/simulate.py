"""Synthetic experiments drawn from a pilot's variance components, judged by the real verdict path.

The points follow :mod:`analysis.variance`'s model on off's mean curve: every configuration
reaches off's PSNR at each λ and image, and its log rate is off's plus its effect, its
configuration × image effect, its seed's effect (correlated with off's same seed) and a
seed × image residual (correlated with off's cell). Seed and configuration × image effects
are normal with the pilot's sds (and seed pairing) unless the pilot kept their shape
(``Components.seed_effects`` from ≥ ``analysis.variance.MIN_SHAPE_SEEDS`` seeds,
``Components.image_effects`` from ≥ ``MIN_SHAPE_IMAGES`` images); then each study seed (image)
is a pilot seed (image) drawn with replacement, the same one for off and every configuration,
so that a seed noisier for every configuration at once, or an image odd for all of them,
stays so. Each kept row is scaled so that its draws have the estimated sd (off's seed effect
the seed sd, a paired seed difference √2 × the paired seed sd, an image effect the image sd),
which also takes out the residual noise a pilot's row or column means carry. A study with
more configurations than the pilot gives each extra one a pilot configuration's value of the
same seed (image) with a random sign: its own verdict sees the pilot's shape, the seed's or
image's size is shared, and its direction is uncorrelated with the others' (normal seed
effects share off's part instead). Each experiment is judged by
:func:`analysis.compare.compare` (BD-rate, interval, multiplicity and evidence rule as a real
study gets them), so the power follows whatever rule that function applies.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .compare import compare
from .variance import Components, Curve


@dataclass(frozen=True)
class Power:
    """Share of simulated experiments in which an effect got its verdict, and a null got any."""

    n_seeds: int
    n_images: int
    power: float
    null_verdicts: float
    replicates: int


def synthetic_points(noise: Components, curve: Curve, effects: dict[str, float], n_seeds: int, n_images: int,
                     rng: np.random.Generator) -> pd.DataFrame:
    """A points table (configuration, is_off, seed, lmbda, image, bpp, psnr) with true BD-rates ``effects`` (%)."""
    names = ["off", *effects]
    n_c, n_l = len(names), len(curve.lambdas)
    difficulty = rng.normal(0.0, noise.image_rate_sd, n_images)
    brightness = rng.normal(0.0, noise.image_psnr_sd, n_images)
    per_image = image_effects(noise, n_c, n_images, rng)
    per_seed = seed_effects(noise, n_c, n_seeds, rng)
    per_cell = _paired(rng, noise.cell_sd, noise.cell_pairing, (n_c, n_seeds, n_images))
    effect = np.log1p(np.array([0.0, *effects.values()]) / 100)
    shift = effect[:, None, None] + per_image[:, None, :] + per_seed[:, :, None] + per_cell + difficulty
    log_rate = np.log(curve.bpp)[None, None, :, None] + shift[:, :, None, :]        # [c, s, λ, i]
    c, s, l, i = np.meshgrid(np.arange(n_c), np.arange(n_seeds), np.arange(n_l), np.arange(n_images), indexing="ij")
    return pd.DataFrame({
        "configuration": np.array(names)[c.ravel()], "is_off": c.ravel() == 0, "seed": s.ravel(),
        "lmbda": np.array(curve.lambdas)[l.ravel()], "image": [f"img{k:03d}" for k in i.ravel()],
        "bpp": np.exp(log_rate).ravel(), "psnr": (np.array(curve.psnr)[l] + brightness[i]).ravel()})


def seed_effects(noise: Components, n_configurations: int, n_seeds: int, rng: np.random.Generator) -> np.ndarray:
    """[configuration (off first), seed]: whole-curve seed effects, resampled from the pilot's seeds when it kept
    them (the noise's shape, not only its variance), else normal."""
    if not noise.seed_effects:
        return _paired(rng, noise.seed_sd, noise.seed_pairing, (n_configurations, n_seeds))
    off, *differences = noise.seed_effects
    picked = rng.integers(len(off), size=n_seeds)
    base = _scaled(np.asarray(off), noise.seed_sd)[picked]
    paired = _resampled(differences, math.sqrt(2) * noise.own_seed_sd, n_configurations - 1, picked, rng)
    return base + np.vstack([np.zeros((1, n_seeds)), paired])


def image_effects(noise: Components, n_configurations: int, n_images: int, rng: np.random.Generator) -> np.ndarray:
    """[configuration (off first: 0), image]: configuration × image effects relative to off, resampled from the
    pilot's images when it kept them (a few extreme images among ordinary ones stay so), else normal."""
    if not noise.image_effects:
        drawn = rng.normal(0.0, noise.image_sd, (n_configurations, n_images))
        drawn[0] = 0.0
        return drawn
    picked = rng.integers(len(noise.image_effects[0]), size=n_images)
    resampled = _resampled(noise.image_effects, noise.image_sd, n_configurations - 1, picked, rng)
    return np.vstack([np.zeros((1, n_images)), resampled])


def _resampled(rows: tuple[tuple[float, ...], ...], sd: float, k: int, picked: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
    """[k, len(picked)]: the pilot units ``picked`` of each configuration's row scaled to ``sd``; configurations
    beyond the pilot's reuse its rows in turn, each unit with a random sign (same size, own direction)."""
    scaled = np.array([_scaled(np.asarray(row), sd) for row in rows])[:, picked]
    signs = rng.choice([-1.0, 1.0], (k, len(picked)))
    signs[:len(rows)] = 1.0          # the pilot's own configurations: as they were there
    return signs * scaled[np.arange(k) % len(rows)]


def _scaled(values: np.ndarray, sd: float) -> np.ndarray:
    """``values`` scaled so that drawing them with replacement has standard deviation ``sd``."""
    spread = values.std()
    return values * (sd / spread) if spread > 0 else np.zeros_like(values)


def _paired(rng: np.random.Generator, sd: float, pairing: float, shape: tuple[int, ...]) -> np.ndarray:
    """Normal draws of ``sd`` whose entries at the same index after the first axis correlate by ``pairing``."""
    shared = rng.normal(0.0, 1.0, (1, *shape[1:]))
    own = rng.normal(0.0, 1.0, shape)
    return sd * (math.sqrt(pairing) * shared + math.sqrt(1 - pairing) * own)


Draw = Callable[[dict, int, int, np.random.Generator], pd.DataFrame]   # (effects %, seeds, images, rng) -> points


def from_components(noise: Components, curve: Curve) -> Draw:
    """The planner's studies: :func:`synthetic_points` with a pilot's noise on its off curve."""
    return lambda effects, n_seeds, n_images, rng: synthetic_points(noise, curve, effects, n_seeds, n_images, rng)


def simulate_power(draw: Draw, effect: float, configurations: int, n_seeds: int, n_images: int, replicates: int,
                   rng: np.random.Generator) -> Power:
    """Power for a true BD-rate ``effect`` (%) judged with ``configurations`` others, and the family-wise
    share of all-null studies in which a configuration is called better or worse, over studies ``draw`` makes."""
    target = "better" if effect < 0 else "worse"
    effects = {f"c{k}": effect for k in range(configurations)}
    nulls = {f"c{k}": 0.0 for k in range(configurations)}
    hits = false = 0
    for _ in range(replicates):
        hits += int((_statuses(draw(effects, n_seeds, n_images, rng)) == target).sum())
        false += bool(_statuses(draw(nulls, n_seeds, n_images, rng)).isin(["better", "worse"]).any())
    return Power(n_seeds, n_images, hits / (replicates * configurations), false / replicates, replicates)


def _statuses(points: pd.DataFrame) -> pd.Series:
    table = compare(points, "off").table
    return table.loc[~table["is_off"], "status"]
