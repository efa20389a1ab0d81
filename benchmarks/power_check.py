"""Is ``analysis.power`` honest? Its predicted power against power measured on synthetic truth.

    python -m benchmarks.power_check [--replicates 100] [--pilots 4] [--out benchmarks/results/power_check.json]

Truth: ``tests/synthetic_rd.py``'s generator (known seed noise, pairing, configuration ×
image effects, λ-level noise; heavy-tailed images), and one case where a seed is 3× noisier
than the others with chance 1/3 (the same seed of every configuration). For each case:

* a pilot so large (200 seeds × 96 images) that its estimates are the truth's is read by
  ``analysis.variance``; the planner's recommendation for power 0.8 and its predicted power
  at 3–6 seeds and at the recommended size (× 24 images, or the fewest the verdict rule
  judges K configurations on: 31 for K = 3) are set beside the power measured
  by judging ``--replicates`` fresh truth studies of that size with ``analysis.compare`` (the
  same count of the same statuses: only the studies differ);
* ``--pilots`` small pilots (3 seeds × 24 images): the planner's recommendation and the one
  under the upper end of the paired seed noise's interval (both scanned up to 8 seeds), beside the truth's need (the
  smallest seed count whose measured power reaches 0.8).

Writes one JSON (cases, sizes, predicted, measured, differences; the machine and date).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import platform
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.power import Target, plan
from analysis.simulate import Power, from_components, simulate_power
from analysis.variance import Curve, estimate
from analysis.verdict import images_needed
from tests.synthetic_rd import BASE_BPP, BASE_PSNR, LAMBDAS, Noise, synthetic_points

RESULTS = Path(__file__).with_name("results") / "power_check.json"
TRUTH_CURVE = Curve(LAMBDAS, BASE_BPP, BASE_PSNR)


@dataclass(frozen=True)
class Case:
    """A truth: the generator's noise, the effect to detect (%), and which seeds are noisier."""

    noise: Noise
    effect: float
    noisy_seeds: tuple[float, float] | None = None      # (share, factor): a seed is factor× noisier with this chance
    configurations: int = 1


CASES = {
    "paired seed noise": Case(Noise(seed_sd=0.03, pairing=0.5, image_sd=0.02, noise_sd=0.02), -5.0),
    "unpaired seed noise": Case(Noise(seed_sd=0.03, pairing=0.0, image_sd=0.02, noise_sd=0.02), -7.0),
    "heavy-tailed images (t3)": Case(Noise(seed_sd=0.015, pairing=0.5, image_sd=0.05, noise_sd=0.02,
                                           image_tail_df=3), -5.0),
    "a third of seeds 3x noisier": Case(Noise(seed_sd=0.02, pairing=0.5, image_sd=0.02, noise_sd=0.02), -5.0,
                                        noisy_seeds=(1 / 3, 3.0)),
    "paired, K = 3": Case(Noise(seed_sd=0.03, pairing=0.5, image_sd=0.02, noise_sd=0.02), -7.0, configurations=3),
}


def truth_points(case: Case, effects: dict[str, float], n_seeds: int, n_images: int,
                 rng: np.random.Generator) -> pd.DataFrame:
    """A synthetic study of ``case`` with true BD-rates ``effects`` (%)."""
    points = synthetic_points({name: value / 100 for name, value in effects.items()}, n_seeds, n_images, case.noise,
                              rng)
    if case.noisy_seeds is not None:    # a noisy seed's whole-curve effect gets sd × factor (pairing kept)
        share, factor = case.noisy_seeds
        extra = case.noise.seed_sd * math.sqrt(factor ** 2 - 1)
        names = ["off", *effects]
        for seed in np.flatnonzero(rng.random(n_seeds) < share):
            shared, own = rng.normal(), rng.normal(size=len(names))
            shift = extra * (math.sqrt(case.noise.pairing) * shared + math.sqrt(1 - case.noise.pairing) * own)
            rows = points["seed"] == seed
            points.loc[rows, "bpp"] *= np.exp(points.loc[rows, "configuration"].map(dict(zip(names, shift))))
    return points


def measured_power(case: Case, n_seeds: int, n_images: int, replicates: int, rng: np.random.Generator) -> Power:
    """Power and null verdict rate of analysis.compare on fresh truth studies of this size."""
    draw = lambda effects, s, i, r: truth_points(case, effects, s, i, r)   # noqa: E731
    return simulate_power(draw, case.effect, case.configurations, n_seeds, n_images, replicates, rng)


def large_pilot(case: Case, rng: np.random.Generator):
    """A pilot so large (200 seeds × 96 images) that its estimates are the truth's: what is left is the model."""
    return estimate(truth_points(case, {"x": case.effect}, 200, 96, rng), "off")


def check_case(case: Case, replicates: int, pilots: int, rng: np.random.Generator) -> dict:
    pilot = large_pilot(case, rng)
    draw = from_components(pilot.components, pilot.curve)
    images = max(24, images_needed(case.configurations))     # fewer: no verdict by rule, power 0 on both sides
    target = Target(case.effect, 0.8, case.configurations, (images,), 8, replicates)
    recommended = plan(pilot.components, pilot.curve, target, start=3).chosen
    sizes = []
    for n_seeds in sorted({3, 4, 5, 6} | ({recommended.n_seeds} if recommended else set())):
        predicted = simulate_power(draw, case.effect, case.configurations, n_seeds, images, replicates, rng)
        measured = measured_power(case, n_seeds, images, replicates, rng)
        sizes.append({"seeds": n_seeds, "images": images, "predicted": predicted.power, "measured": measured.power,
                      "difference": predicted.power - measured.power, "predicted_null": predicted.null_verdicts,
                      "measured_null": measured.null_verdicts})
    at_recommended = next((row for row in sizes if recommended and row["seeds"] == recommended.n_seeds), None)
    small = []
    target = replace(target, replicates=max(replicates // 2, 10))
    for _ in range(pilots):
        pilot3 = estimate(truth_points(case, {"x": case.effect}, 3, 24, rng), "off")
        chosen = plan(pilot3.components, pilot3.curve, target).chosen
        upper = plan(pilot3.components.with_own_seed_sd(pilot3.estimates["own_seed_sd"].high), pilot3.curve, target,
                     chosen.n_seeds if chosen else target.max_seeds).chosen
        small.append({"recommended": chosen.n_seeds if chosen else None,
                      "upper_noise_recommended": upper.n_seeds if upper else None,
                      "own_seed_sd": pilot3.estimates["own_seed_sd"].value,
                      "own_seed_sd_high": pilot3.estimates["own_seed_sd"].high})
    return {"case": asdict(case), "large_pilot_estimates": {k: v.value for k, v in pilot.estimates.items()},
            "recommended_seeds": recommended.n_seeds if recommended else None,
            "at_recommended": at_recommended, "sizes": sizes,
            "truth_needs_seeds": next((row["seeds"] for row in sizes if row["measured"] >= 0.8), None),
            "max_abs_difference": max(abs(row["difference"]) for row in sizes), "small_pilots": small}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicates", type=int, default=100)
    parser.add_argument("--pilots", type=int, default=4)
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    results, start = {}, time.time()
    for name in args.cases:
        results[name] = check_case(CASES[name], args.replicates, args.pilots, rng)
        row = results[name]
        print(f"{name}: recommended {row['recommended_seeds']} seeds; max |predicted - measured| "
              f"{row['max_abs_difference']:.3f}; "
              + "; ".join(f"{r['seeds']} seeds {r['predicted']:.2f} vs {r['measured']:.2f}" for r in row["sizes"])
              + f"; truth needs {row['truth_needs_seeds']} seeds; 3-seed pilots recommend "
              + str([p["recommended"] for p in row["small_pilots"]]) + ", at the noise's upper end "
              + str([p["upper_noise_recommended"] for p in row["small_pilots"]]), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                               "machine": platform.platform(), "processor": platform.processor(),
                               "replicates": args.replicates, "pilots": args.pilots,
                               "seconds": round(time.time() - start, 1), "cases": results}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
