"""The verdict rule's error rates and power on synthetic experiments of known truth.

    python -m benchmarks.verdict_simulation [--reps 100] [--only NAME ...] [--out CSV] [--rule LABEL] [--markdown]

Each experiment is a whole synthetic points table (tests/synthetic_rd.py: per-image,
per-seed, per-λ-model and per-point noise, skewed kinds of image that each configuration
draws on its own images; true BD-rate known) judged by the real code path,
``analysis.verdict.bd_table``. Per row: how often any null configuration got a verdict
(family-wise false rate) and how often the first true effect was called "better" (power),
under the rule's Holm step-down and under Bonferroni (read from the same tables'
p-values), and how often no verdict was issued at all. Selection rows choose the best of
N configurations on validation images with the same trained models (training noise
shared), then judge it on separate test images. Writes CSV (default
benchmarks/results/verdict_simulation.csv) with the date, machine and rule version.
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import platform
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.verdict import FAMILY_CONFIDENCE, bd_table
from tests.synthetic_rd import Noise, synthetic_points

RESULTS = Path(__file__).with_name("results") / "verdict_simulation.csv"
VERDICTS = ("better", "worse")
QUIET = Noise(seed_sd=0.01, pairing=0.5, image_sd=0.02, noise_sd=0.01, model_sd=0.01)
PAIRED = Noise(seed_sd=0.02, pairing=0.5, image_sd=0.03, noise_sd=0.02, model_sd=0.01)
REGIMES = {
    "images dominate": Noise(seed_sd=0.0, pairing=0.0, image_sd=0.05, noise_sd=0.02),
    "paired training noise": PAIRED,
    "unpaired training noise": Noise(seed_sd=0.03, pairing=0.0, image_sd=0.02, noise_sd=0.02, model_sd=0.01),
    "t(3) image effects": replace(PAIRED, image_tail_df=3.0),
    "skewed: 1/8 of images +40 %": replace(QUIET, minority=(1 / 8, 0.40)),
    "skewed: 1/8 of images −40 %": replace(QUIET, minority=(1 / 8, -0.40)),
    "skewed +40 %, paired training noise": replace(PAIRED, minority=(1 / 8, 0.40)),
    "training noise dominates": Noise(seed_sd=0.03, pairing=0.5, image_sd=0.01, noise_sd=0.01, model_sd=0.01),
}


@dataclass(frozen=True)
class Row:
    name: str
    regime: str
    effects: tuple[float, ...]          # one per configuration, fractions; 0 = null
    seeds: int
    images: int
    searched: int = 0                   # > 0: the best of this many nulls on validation, judged on test

    @property
    def k(self) -> int:
        return len(self.effects)


def _nulls(k: int) -> tuple[float, ...]:
    return (0.0,) * k


def rows() -> list[Row]:
    """The table: nulls at the smallest verdict setting of each K, then power, then selection."""
    table = []
    for regime in REGIMES:
        table += [Row(f"null K=1 3x24 · {regime}", regime, _nulls(1), 3, 24),
                  Row(f"null K=3 3x31 · {regime}", regime, _nulls(3), 3, 31)]
    for regime in ("skewed: 1/8 of images +40 %", "skewed: 1/8 of images −40 %"):
        table += [Row(f"null K=6 3x36 · {regime}", regime, _nulls(6), 3, 36),
                  Row(f"null K=3 5x31 · {regime}", regime, _nulls(3), 5, 31),
                  Row(f"null K=6 5x50 · {regime}", regime, _nulls(6), 5, 50),
                  Row(f"null K=3 3x24 · {regime}", regime, _nulls(3), 3, 24)]
    table += [Row("−10 % K=1 3x24 · paired training noise", "paired training noise", (-0.10,), 3, 24),
              Row("−10 % K=1 3x24 · unpaired training noise", "unpaired training noise", (-0.10,), 3, 24),
              Row("−10 % K=1 3x24 · t(3) image effects", "t(3) image effects", (-0.10,), 3, 24),
              Row("−10 % K=1 3x24 · skewed +40 %, paired", "skewed +40 %, paired training noise", (-0.10,), 3, 24),
              Row("−10 %, null, null K=3 3x31 · paired training noise", "paired training noise",
                  (-0.10, 0.0, 0.0), 3, 31),
              Row("−7 %, −10 %, null K=3 3x31 · paired training noise", "paired training noise",
                  (-0.07, -0.10, 0.0), 3, 31),
              Row("−7 %, −10 %, null K=3 5x31 · unpaired training noise", "unpaired training noise",
                  (-0.07, -0.10, 0.0), 5, 31),
              Row("−5 % K=1 5x24 · paired training noise", "paired training noise", (-0.05,), 5, 24),
              Row("best of 50 nulls on validation, K=1 3x24 · training noise dominates", "training noise dominates",
                  _nulls(1), 3, 24, searched=50),
              Row("best of 50 nulls on validation, K=1 5x24 · training noise dominates", "training noise dominates",
                  _nulls(1), 5, 24, searched=50)]
    return table


def experiment(row: Row, rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, float]]:
    """One experiment's BD table (indexed by configuration) and each judged configuration's truth."""
    if not row.searched:
        effects = {f"c{i}": effect for i, effect in enumerate(row.effects)}
        return bd_table(synthetic_points(effects, row.seeds, row.images, REGIMES[row.regime], rng),
                        "off").set_index("configuration"), effects
    # the same trained models on validation and test images: one table, split by image
    effects = {f"c{i}": 0.0 for i in range(row.searched)}
    points = synthetic_points(effects, row.seeds, 2 * row.images, REGIMES[row.regime], rng)
    validation = points["image"].isin(sorted(set(points["image"]))[:row.images])
    ranked = bd_table(points[validation], "off", resample=False).set_index("configuration")
    best = ranked.drop(index="off")["bd_rate_vs_off"].idxmin()
    test = points[~validation & points["configuration"].isin(["off", best])]
    kwargs = {"searched": row.searched} if "searched" in inspect.signature(bd_table).parameters else {}
    return bd_table(test, "off", **kwargs).set_index("configuration"), {best: 0.0}


def measure_row(row: Row, reps: int, seed: int) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    counts = dict(null_holm=0, null_bonferroni=0, power_holm=0, power_bonferroni=0, power2_holm=0,
                  power2_bonferroni=0, no_verdict=0)
    start = time.process_time()
    for _ in range(reps):
        table, truth = experiment(row, rng)
        holm = {name: table.loc[name, "status"] for name in truth}
        bonferroni = {name: _bonferroni(table.loc[name]) for name in truth}
        counts["no_verdict"] += not any(s in (*VERDICTS, "not significant") for s in holm.values())
        for rule, statuses in (("holm", holm), ("bonferroni", bonferroni)):
            counts[f"null_{rule}"] += any(truth[n] == 0 and statuses[n] in VERDICTS for n in truth)
            true = [n for n in truth if truth[n] != 0]
            for key, name in zip(("power", "power2"), true):
                counts[f"{key}_{rule}"] += statuses[name] == "better"
    shares = {key: value / reps for key, value in counts.items()}
    if not any(row.effects) or row.searched:
        shares = {key: value for key, value in shares.items() if not key.startswith("power")}
    elif sum(e != 0 for e in row.effects) < 2:
        shares = {key: value for key, value in shares.items() if not key.startswith("power2")}
    if all(row.effects):
        shares = {key: value for key, value in shares.items() if not key.startswith("null")}
    return {"row": row.name, "K": max(row.k, row.searched), "seeds": row.seeds, "images": row.images,
            "reps": reps, **shares, "cpu_s": round(time.process_time() - start, 1)}


def _bonferroni(row: pd.Series) -> str:
    """The status Bonferroni would give: the interval at 1 − α/K, read from the Holm table's p-value."""
    if "p_value" not in row or row["status"] not in (*VERDICTS, "not significant"):
        return row["status"]
    if row["p_value"] < (1 - FAMILY_CONFIDENCE) / row["family"]:
        return "better" if row["bd_rate_vs_off"] < 0 else "worse"
    return "not significant"


def markdown(table: pd.DataFrame, previous: pd.DataFrame | None = None) -> str:
    """The docs table: one line per row, percentages; with ``previous``, the same rows under another rule."""
    def cell(value: object) -> str:
        return "" if pd.isna(value) else f"{100 * value:.0f} %"

    def pair(r: pd.Series, a: str, b: str) -> str:
        return "" if pd.isna(r.get(a, np.nan)) else f"{cell(r[a])} / {cell(r[b])}"

    before = previous.set_index("row") if previous is not None else pd.DataFrame()
    lines = ["| setting (K, seeds × images) · noise | null called (Holm / Bonferroni) | "
             "power (Holm / Bonferroni) | 2nd effect's power (Holm / Bonferroni) | no verdict | previous rule: null "
             "called / power | experiments |", "|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        old = before.loc[r["row"]] if r["row"] in before.index else pd.Series(dtype=float)
        earlier = " / ".join(cell(old[c]) for c in ("null_bonferroni", "power_bonferroni") if pd.notna(old.get(c)))
        lines.append(f"| {r['row']} | {pair(r, 'null_holm', 'null_bonferroni')} | "
                     f"{pair(r, 'power_holm', 'power_bonferroni')} | {pair(r, 'power2_holm', 'power2_bonferroni')} | "
                     f"{cell(r['no_verdict'])} | {earlier} | {r['reps']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=100, help="experiments per row (default 100)")
    parser.add_argument("--only", nargs="*", default=None, help="rows whose name contains one of these")
    parser.add_argument("--out", default=str(RESULTS), help="CSV to write")
    parser.add_argument("--markdown", action="store_true", help="print the docs table of --out and exit")
    parser.add_argument("--previous", help="with --markdown: a CSV of the same rows under an earlier rule")
    parser.add_argument("--rule", default="current",
                        help="label of the analysis code judged (e.g. when PYTHONPATH puts an older analysis first)")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(pd.read_csv(args.out), pd.read_csv(args.previous) if args.previous else None))
        return
    chosen = [(i, row) for i, row in enumerate(rows()) if not args.only or any(part in row.name for part in args.only)]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    results = []
    for i, row in chosen:
        results.append({**measure_row(row, args.reps, seed=1000 + i), "rule": args.rule,
                        "date": dt.date.today().isoformat(), "machine": platform.node() or platform.machine(),
                        "commit": commit})
        print({k: v for k, v in results[-1].items() if k not in ("rule", "date", "machine", "commit")}, flush=True)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(results).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
