"""How many seeds a BD-rate effect needs: power from a pilot, before the study is paid for.

    python -m analysis.power PILOT [--effect -5] [--power 0.8] [--configurations K] [--images N ...]
        [--max-seeds 10] [--replicates 100] [--out FILE.json]

PILOT is an experiment folder (its ``evaluation/points.csv``, from ``analysis.evaluate``) or
a points CSV in ``analysis.compare``'s format, with ≥ 2 seeds of off and of one
configuration. The pilot's variance components (:mod:`analysis.variance`) are printed with
90 % intervals; then, for 2, 3, ... seeds at each ``--images`` count, synthetic studies with
that noise and a true BD-rate of ``--effect`` % (every one of ``--configurations``
configurations; seed effects resampled from the pilot's seeds when it has ≥ 10, configuration
× image effects from its images when it has ≥ 20, else normal)
are judged by ``analysis.compare`` — the verdict path a real study gets — and
the table gives the share called better (worse for a positive effect) and the share of
all-null studies in which any configuration gets a verdict. The scan stops at the first seed
count that reaches ``--power``; the same scan with the paired seed noise at its interval's
upper end says how far a small pilot can be trusted. Last line: ``recommend: S seeds x N
images (power P for E %, K configurations)``, or that no size up to ``--max-seeds`` does.
Bad input: one line, exit status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .cli import ArgumentParser, run
from .errors import AnalysisError

QUALITIES = ("psnr", "ms_ssim_db")


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m analysis.power", description=__doc__.splitlines()[0])
    parser.add_argument("pilot", help="experiment folder (with evaluation/points.csv) or points CSV")
    parser.add_argument("--effect", type=float, default=-5.0, help="true BD-rate to detect, %% (default -5)")
    parser.add_argument("--power", type=float, default=0.8, help="target share of studies with the verdict (0.8)")
    parser.add_argument("--configurations", type=int, help="configurations judged against off at once in the "
                        "study (the multiplicity family; default: the pilot's)")
    parser.add_argument("--images", type=int, nargs="+", default=[24], help="test image counts to try (24)")
    parser.add_argument("--max-seeds", type=int, default=10, help="largest seed count to try (10)")
    parser.add_argument("--replicates", type=int, default=100, help="simulated studies per size (100)")
    parser.add_argument("--reference", help="off's configuration name (default: the one is_off marks)")
    parser.add_argument("--quality", choices=QUALITIES, default="psnr")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the simulations")
    parser.add_argument("--out", help="also write everything printed, as JSON, to this file")
    return parser


@dataclass(frozen=True)
class Target:
    """What the study must detect, how often, and with how many configurations judged at once."""

    effect: float = -5.0
    power: float = 0.8
    configurations: int = 1
    images: tuple[int, ...] = (24,)
    max_seeds: int = 10
    replicates: int = 100
    seed: int = 0

    def check(self) -> None:
        if not (self.effect > -100 and self.effect != 0):
            raise AnalysisError(f"--effect must be a non-zero BD-rate in % above -100, not {self.effect:g}")
        if not 0 < self.power < 1:
            raise AnalysisError(f"--power must be between 0 and 1, not {self.power:g}")
        if self.configurations < 1:
            raise AnalysisError(f"--configurations must be ≥ 1, not {self.configurations}")
        if min(self.images) < 2:
            raise AnalysisError(f"--images must be ≥ 2, not {min(self.images)}")
        if self.max_seeds < 2:
            raise AnalysisError(f"--max-seeds must be ≥ 2, not {self.max_seeds}")
        if self.replicates < 10:
            raise AnalysisError(f"--replicates must be ≥ 10, not {self.replicates}")


@dataclass(frozen=True)
class Plan:
    """The scanned sizes and the smallest that reaches the target (None: none up to max_seeds)."""

    rows: list            # analysis.simulate.Power, in scan order
    chosen: object        # the Power row recommended, or None


def read_pilot(path: str, reference: str | None = None, quality: str = "psnr"):
    """(points, reference) of an experiment folder's evaluation or of a points CSV."""
    from .compare import read_points
    from .points import evaluation_file

    source = Path(path)
    if source.is_dir():
        source = evaluation_file(source)
        if not source.is_file():
            raise AnalysisError(f"{path} has no {source.relative_to(path)}: run python -m analysis.evaluate {path} first")
    elif not source.is_file():
        raise AnalysisError(f"pilot not found: {path}")
    return read_points(source, reference, quality)


def plan(noise, curve, target: Target, start: int = 2) -> Plan:
    """Scan start … max_seeds seeds at each image count; stop at the first seed count that reaches the power."""
    import numpy as np

    from .simulate import from_components, simulate_power

    draw = from_components(noise, curve)
    rng = np.random.default_rng(target.seed)
    rows, chosen = [], None
    for n_seeds in range(start, target.max_seeds + 1):
        for n_images in sorted(target.images):
            row = simulate_power(draw, target.effect, target.configurations, n_seeds, n_images,
                                 target.replicates, rng)
            rows.append(row)
            if chosen is None and row.power >= target.power:
                chosen = row
        if chosen is not None:
            break
    return Plan(rows, chosen)


def recommendation(result: Plan, target: Target) -> str:
    """The CLI's last line."""
    k = target.configurations
    if result.chosen is None:
        best = max(result.rows, key=lambda row: row.power)
        return (f"recommend: none: no size up to {target.max_seeds} seeds x {max(target.images)} images reaches power "
                f"{target.power:.2f} for {target.effect:+g} % ({k} configurations; best {best.power:.2f} at "
                f"{best.n_seeds} seeds x {best.n_images} images)")
    row = result.chosen
    return (f"recommend: {row.n_seeds} seeds x {row.n_images} images (power {row.power:.2f} for {target.effect:+g} %, "
            f"{k} configurations)")


def components_lines(pilot) -> list[str]:
    names = {"seed_sd": "seed noise of one curve (what unpaired seeds see)",
             "own_seed_sd": "seed noise a paired comparison sees (not shared by off's seed)",
             "image_sd": "configuration x image (how differently an image suits it)",
             "cell_difference_sd": "seed x image residual of the paired difference"}
    lines = [f"variance components (sd of the BD-rate's response, log-rate units x 100 ≈ BD-rate %, "
             f"{100 * 0.9:.0f} % intervals):"]
    for key, words in names.items():
        e = pilot.estimates[key]
        lines.append(f"  {words:<66} {100 * e.value:6.2f} % [{100 * e.low:.2f}, {100 * e.high:.2f}] (df {e.df})")
    return lines


def shape_lines(pilot) -> list[str]:
    """How the simulations draw seed and image effects: the pilot's own, or normal when it has too few to show a
    shape (then the power assumes no seed, or image, is now and then much odder than the rest)."""
    from .variance import MIN_SHAPE_IMAGES, MIN_SHAPE_SEEDS

    noise = pilot.components
    seeds = (f"seed noise shape: the pilot's {len(noise.seed_effects[0])} seeds resampled whole (a seed noisier for "
             "every configuration at once is planned as such), scaled to the components above"
             if noise.seed_effects else
             f"seed noise shape: normal (a pilot needs ≥ {MIN_SHAPE_SEEDS} seeds shared by off and every "
             "configuration to show another): the power below assumes no seed is now and then much noisier than "
             "the rest")
    images = (f"image effect shape: the pilot's {len(noise.image_effects[0])} images resampled (a few extreme images "
              "among ordinary ones are planned as such), scaled to the configuration x image sd"
              if noise.image_effects else
              f"image effect shape: normal (a pilot needs ≥ {MIN_SHAPE_IMAGES} images to show another): the power "
              "below assumes no image suits a configuration much better or worse than the rest")
    return [seeds, images]


def fit_lines(points, reference: str, quality: str, pilot, replicates: int, seed: int) -> tuple[list[str], dict]:
    """Does the model fit? The pilot's own BD-rates and interval widths (analysis.compare) beside the widths of
    simulated pilots of its size and configurations with its estimated noise: far outside, the model misreads it."""
    import numpy as np

    from .compare import compare
    from .simulate import synthetic_points

    table = compare(points, reference, quality).table.set_index("configuration").drop(reference)
    effects = {str(name): float(value) for name, value in table["bd_rate_vs_off"].items() if np.isfinite(value)}
    rng = np.random.default_rng(seed)
    width = lambda t: float(np.nanmean(t["ci_high"] - t["ci_low"]))   # noqa: E731
    simulated = [width(compare(synthetic_points(pilot.components, pilot.curve, effects, pilot.n_seeds, pilot.n_images,
                                                rng), "off").table.iloc[1:]) for _ in range(replicates)]
    low, median, high = np.nanpercentile(simulated, [10, 50, 90])
    observed = width(table)
    lines = ["  pilot's BD-rate vs off (analysis.compare): " + ", ".join(
                 f"{name} {row.bd_rate_vs_off:+.2f} % [{row.ci_low:+.2f}, {row.ci_high:+.2f}]"
                 for name, row in table.iterrows()),
             f"  model check: pilots of this size simulated with this noise have intervals {median:.2f} points wide "
             f"(10-90 %: {low:.2f}-{high:.2f}); this pilot's {observed:.2f}"
             + ("" if low <= observed <= high else " — outside: read the power table with care")]
    return lines, {"pilot_width": observed, "simulated_width": [low, median, high],
                   "pilot_bd_rate": table["bd_rate_vs_off"].to_dict()}


def table_lines(result: Plan, target: Target) -> list[str]:
    verdict = "better" if target.effect < 0 else "worse"
    lines = [f"power for {target.effect:+g} % ({target.configurations} configurations judged together; "
             f"{target.replicates} simulated studies per row, judged by analysis.compare):",
             f"  {'seeds':>5} {'images':>6} {'power (' + verdict + ')':>16} {'null: any verdict':>18}"]
    lines += [f"  {row.n_seeds:>5} {row.n_images:>6} {row.power:>16.2f} {row.null_verdicts:>18.2f}"
              for row in result.rows]
    return lines


def power_report(points, reference: str, quality: str, target: Target, source: str) -> dict:
    """Everything the CLI prints, as a dict (also its --out JSON): pilot, components, plans, lines."""
    from .variance import estimate

    target.check()
    pilot = estimate(points, reference, quality)
    result = plan(pilot.components, pilot.curve, target)
    upper_noise = pilot.components.with_own_seed_sd(pilot.estimates["own_seed_sd"].high)
    # more noise needs at least as many seeds: scan from the point estimate's answer
    upper = plan(upper_noise, pilot.curve, target, result.chosen.n_seeds if result.chosen else target.max_seeds)
    own = pilot.estimates["own_seed_sd"]
    fit, check = fit_lines(points, reference, quality, pilot, target.replicates, target.seed)
    lines = [f"pilot {source}: {len(pilot.configurations)} configuration(s) vs {reference}, {pilot.n_seeds} seeds x "
             f"{pilot.n_images} images x {len(pilot.curve.lambdas)} λ", *components_lines(pilot), *shape_lines(pilot),
             *fit,
             *table_lines(result, target),
             f"uncertainty: with the paired seed noise at its interval's upper end ({100 * own.high:.2f} % instead of "
             f"{100 * own.value:.2f} %, {own.df} degrees of freedom): "
             + recommendation(upper, target).removeprefix("recommend: "),
             recommendation(result, target)]
    return {"source": source, "reference": reference, "target": asdict(target), "pilot": pilot.as_dict(),
            "model_check": check,
            "table": [asdict(row) for row in result.rows],
            "recommended": asdict(result.chosen) if result.chosen else None,
            "upper_noise_table": [asdict(row) for row in upper.rows],
            "upper_noise_recommended": asdict(upper.chosen) if upper.chosen else None, "lines": lines}


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    def body() -> str:
        args = _parser().parse_args(argv)
        points, reference = read_pilot(args.pilot, args.reference, args.quality)
        k = args.configurations or int(points.loc[~points["is_off"], "configuration"].nunique())
        target = Target(args.effect, args.power, k, tuple(args.images), args.max_seeds, args.replicates, args.seed)
        report = power_report(points, reference, args.quality, target, args.pilot)
        if args.out:
            _write_json(Path(args.out), report)
        return "\n".join(report["lines"])

    return run("analysis.power", body)


def _write_json(path: Path, data: dict) -> None:
    import json
    import math

    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(clean(data), indent=2) + "\n")
    temporary.replace(path)


if __name__ == "__main__":
    sys.exit(main())
