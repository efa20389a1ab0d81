"""The verdict rule's error rates on synthetic experiments of known truth.

Each replicate is a whole synthetic experiment (tests/synthetic_rd.py: per-image, per-seed
and per-λ-model noise, skewed kinds of image, known true BD-rate) judged by the real code
path, ``analysis.verdict.bd_table`` (bjontegaard BD-rate, the jackknife and image-bootstrap
interval, Holm, the evidence rule). The requirement: where a verdict is issued, a null is
called better/worse ≤ 8 % of the time (family-wise over K), and a true −10 % at 3 seeds × 24
images is called "better" ≥ 90 % of the time. Replicate counts are small (seconds per test on
CPU); benchmarks/verdict_simulation.py measures the same with ≥ 100 experiments per row.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from analysis.verdict import MIN_IMAGES, MIN_SEEDS, bd_table
from tests.synthetic_rd import Noise, synthetic_points

REGIMES = {
    # test images carry the variance; no training noise
    "images dominate": Noise(seed_sd=0.0, pairing=0.0, image_sd=0.05, noise_sd=0.02),
    # ~2 % BD-rate per seed, seed s of a configuration and of off correlated 0.5
    "paired training noise": Noise(seed_sd=0.02, pairing=0.5, image_sd=0.03, noise_sd=0.02),
    # the "moderate" training noise (~3 % per model) with nothing shared between the seeds of a pair
    "unpaired training noise": Noise(seed_sd=0.03, pairing=0.0, image_sd=0.02, noise_sd=0.02),
    # a kind of image (20 % of them) on which the configuration costs 12 % more, the rest save 3 %
    "minority images": Noise(seed_sd=0.02, pairing=0.5, image_sd=0.02, noise_sd=0.02, minority=(0.2, 0.12)),
}
# quiet training, and each configuration's own kind of image (1/8 of them) costing 40 % more bits
SKEWED = Noise(seed_sd=0.01, pairing=0.5, image_sd=0.02, noise_sd=0.01, model_sd=0.01, minority=(1 / 8, 0.40))


def judge(effects: dict[str, float], n_seeds: int, n_images: int, noise: Noise, reps: int, seed: int):
    """Per configuration: share labelled better, share labelled better or worse, share whose interval
    covers the truth; and the share of replicates in which any null configuration got a verdict."""
    rng = np.random.default_rng(seed)
    better, verdict, covered = ({name: 0 for name in effects} for _ in range(3))
    any_null = 0
    statuses = set()
    for _ in range(reps):
        table = bd_table(synthetic_points(effects, n_seeds, n_images, noise, rng), "off").set_index("configuration")
        hit = False
        for name, effect in effects.items():
            row = table.loc[name]
            statuses.add(row["status"])
            better[name] += row["status"] == "better"
            verdict[name] += row["status"] in ("better", "worse")
            covered[name] += row["ci_low"] <= 100 * effect <= row["ci_high"]
            hit |= effect == 0 and row["status"] in ("better", "worse")
        any_null += hit
    share = lambda counts: {name: count / reps for name, count in counts.items()}   # noqa: E731
    return share(better), share(verdict), share(covered), any_null / reps, statuses


@pytest.mark.parametrize("regime", list(REGIMES))
def test_a_null_is_rarely_called_better_or_worse_at_the_smallest_verdict_setting(regime):
    """3 seeds × MIN_IMAGES images: the smallest experiment that gets a verdict."""
    _, verdict, covered, _, statuses = judge({"x": 0.0}, MIN_SEEDS, MIN_IMAGES, REGIMES[regime], reps=80, seed=1)
    assert verdict["x"] <= 0.10
    assert covered["x"] >= 0.88                          # nominal 95 %
    assert statuses <= {"better", "worse", "not significant"}    # a verdict is issued here


def test_true_minus_ten_percent_at_3_seeds_24_images_is_better():
    better, _, covered, _, _ = judge({"a": -0.10}, 3, 24, REGIMES["paired training noise"], reps=80, seed=2)
    assert better["a"] >= 0.90 and covered["a"] >= 0.90


def test_nulls_judged_with_others_rarely_yield_any_verdict():
    """K = 3 (Holm: −10 % and two nulls) under unpaired training noise, where 3 seeds estimate the
    variance worst: the chance that either null is called better or worse (family-wise)."""
    _, _, covered, any_null, _ = judge({"a": -0.10, "b": 0.0, "c": 0.0}, 3, 31, REGIMES["unpaired training noise"],
                                       reps=70, seed=4)
    assert any_null <= 0.10
    assert min(covered.values()) >= 0.90                 # nominal 97.5–98.3 % each


def test_a_kind_of_image_present_once_does_not_make_a_null_better():
    """A kind of image (1/8 of the population) costs 40 % more bits, the rest save 5.7 %: the true BD-rate is
    0. A 24-image test set holds one such image 14 % of the time; the t interval, whose SE is small exactly
    when the costly image weighs little, then called the null better in 32 of these 80 experiments. The
    image bootstrap-t widens the interval; an image far on the worse side of the rest makes it indicative."""
    _, verdict, _, _, statuses = judge({"x": 0.0}, 3, 24, replace(SKEWED, kind_count=1), reps=80, seed=6)
    assert verdict["x"] <= 0.12
    assert any(s.startswith("indicative: 1 test image(s) far on the worse side of the rest") for s in statuses)


def test_nulls_with_their_own_rare_kinds_of_image_get_no_verdict_on_too_few_images():
    """K = 3 nulls, each with its own kind of image (1/8, +40 %), on 24 images: the chance that one of them has
    none of its kind in the set (and shows a clean −5.7 %) is 1 − (1 − 0.875²⁴)³ = 12 %; no interval can see an
    absent kind, so a verdict on 3 needs 31 images. The old rule called some null 20 % of the time here."""
    _, _, _, any_null, statuses = judge({f"n{i}": 0.0 for i in range(3)}, 3, 24, SKEWED, reps=30, seed=7)
    assert any_null <= 0.08
    assert statuses == {"indicative: 24 test images (31 needed to judge 3 configurations at once)"}


def test_the_best_of_many_nulls_on_validation_is_not_called_better_on_test():
    """20 null configurations with the same trained models on validation and test images (training noise
    dominates); the best on validation, judged on test: the old rule (K = 1) called it better in 7 of these 30
    experiments; the correction for the 20 searched in 2 (the bound, family-wise, is 5 %;
    benchmarks/verdict_simulation.py: best of 50)."""
    rng = np.random.default_rng(9)
    noise = Noise(seed_sd=0.03, pairing=0.5, image_sd=0.01, noise_sd=0.01, model_sd=0.01)
    called = 0
    for _ in range(30):
        points = synthetic_points({f"c{i}": 0.0 for i in range(20)}, 3, 48, noise, rng)
        validation = points["image"] < "img024"
        ranked = bd_table(points[validation], "off", resample=False).set_index("configuration").drop(index="off")
        best = ranked["bd_rate_vs_off"].idxmin()
        test = points[~validation & points["configuration"].isin(["off", best])]
        row = bd_table(test, "off", searched=20).set_index("configuration").loc[best]
        called += row["status"] == "better"
    assert called / 30 <= 0.10


def test_one_seed_interval_misses_training_noise_so_it_is_never_a_verdict():
    """With 1 seed the interval covers the test images only: under training noise it misses the truth
    often, which is why 1 seed is "indicative", however many images."""
    _, verdict, covered, _, statuses = judge({"x": 0.0}, 1, 24, REGIMES["unpaired training noise"], reps=60, seed=3)
    assert covered["x"] < 0.75
    assert verdict["x"] == 0 and statuses == {"indicative: 1 seed"}
