"""A cheap synthetic RD generator with known truth, for the verdict rule's simulations.

Every configuration's rate is ``(1 + effect)`` × off's at equal PSNR in the population of
images, so its true BD-rate vs off is exactly ``100 · effect`` %. Around that, in log-rate:

* image difficulty (rate and PSNR), shared by every configuration (images are paired);
* ``image_sd``: a configuration × image effect, the same for every seed and λ (an image the
  configuration suits better or worse than off does); Student-t with ``image_tail_df``
  degrees of freedom when set (a few images that respond very differently), else normal;
* ``minority``: (share, effect): a share of images (a kind: greyscale, text, ...) on which a
  non-reference configuration needs ``effect`` more rate (×(1 + effect)) while the rest save
  enough that the population's mean rate is unchanged (the true BD-rate stays the
  configuration's effect); each configuration has its own kind of image (its own random
  images) unless ``shared_kind``; a small test set often holds none of them; ``kind_count``
  fixes how many test images are of each configuration's kind (an experiment conditional on
  the test set at hand; the population truth is unchanged);
* ``seed_sd``: a per-seed effect on the whole curve (training noise); ``pairing`` is the
  correlation between seed s of a configuration and seed s of off (same initial weights and
  batch order);
* ``model_sd``: training noise of one λ model (configuration × seed × λ), shared by all its images;
* ``noise_sd``: independent noise per configuration × seed × λ × image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

LAMBDAS = (0.0018, 0.0035, 0.0067, 0.013)
BASE_BPP = (0.20, 0.35, 0.55, 0.80)
BASE_PSNR = (28.0, 30.0, 32.0, 34.0)


@dataclass(frozen=True)
class Noise:
    seed_sd: float = 0.02
    pairing: float = 0.5
    image_sd: float = 0.03
    noise_sd: float = 0.02
    image_tail_df: float | None = None
    minority: tuple[float, float] | None = None
    shared_kind: bool = False
    kind_count: int | None = None
    model_sd: float = 0.0


def synthetic_points(effects: dict[str, float], n_seeds: int, n_images: int, noise: Noise,
                     rng: np.random.Generator, reference: str = "off") -> pd.DataFrame:
    """A points table (configuration, is_off, seed, lmbda, image, bpp, psnr) for ``effects`` (fractions)."""
    names = [reference, *[name for name in effects if name != reference]]
    n_c, n_l = len(names), len(LAMBDAS)
    image_rate, image_psnr = rng.normal(0.0, 0.3, n_images), rng.normal(0.0, 1.5, n_images)
    if noise.image_tail_df is None:
        per_image = rng.normal(0.0, noise.image_sd, (n_c, 1, 1, n_images))
    else:   # scaled to the same sd
        df = noise.image_tail_df
        per_image = noise.image_sd * np.sqrt((df - 2) / df) * rng.standard_t(df, (n_c, 1, 1, n_images))
    if noise.minority is not None:
        share, effect = noise.minority
        shape = (1 if noise.shared_kind else n_c - 1, 1, 1, n_images)
        if noise.kind_count is None:
            kind = rng.random(shape) < share
        else:
            kind = rng.random(shape).argsort(axis=-1) < noise.kind_count
        per_image[1:] += np.where(kind, np.log1p(effect), np.log1p(-effect * share / (1 - share)))
    shared, own = rng.normal(0.0, 1.0, (1, n_seeds, 1, 1)), rng.normal(0.0, 1.0, (n_c, n_seeds, 1, 1))
    per_seed = noise.seed_sd * (np.sqrt(noise.pairing) * shared + np.sqrt(1 - noise.pairing) * own)
    log_rate = (np.log(np.array([1 + effects.get(name, 0.0) for name in names]))[:, None, None, None]
                + np.log(BASE_BPP)[None, None, :, None] + image_rate + per_image + per_seed
                + rng.normal(0.0, noise.model_sd, (n_c, n_seeds, n_l, 1))
                + rng.normal(0.0, noise.noise_sd, (n_c, n_seeds, n_l, n_images)))
    c, s, l, i = np.meshgrid(np.arange(n_c), np.arange(n_seeds), np.arange(n_l), np.arange(n_images), indexing="ij")
    return pd.DataFrame({
        "configuration": np.array(names)[c.ravel()], "is_off": c.ravel() == 0, "seed": s.ravel(),
        "lmbda": np.array(LAMBDAS)[l.ravel()], "image": [f"img{k:03d}" for k in i.ravel()],
        "bpp": np.exp(log_rate).ravel(), "psnr": (np.array(BASE_PSNR)[l] + image_psnr[i]).ravel(),
    })
