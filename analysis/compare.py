"""Judge any per-image RD points against a reference: BD-rate, interval and the verdict rule.

    python -m analysis.compare POINTS.csv [--reference NAME] [--out DIR] [--method pchip] [--quality psnr]

POINTS.csv has one row per ``configuration, seed, lmbda, image`` with ``bpp`` and ``psnr``
(or the ``--quality`` column), and either ``is_off`` (true on the reference configuration's
rows) or ``--reference NAME``. An optional ``error`` column marks an errored seed: a row with
a non-empty ``error`` (its point columns may be empty) makes that configuration "incomplete".
``--searched N``: the configurations were chosen as the best of N on validation with the same
trained models (the verdict then corrects for N). Seeds with equal numbers count as paired
(same initial weights and batch order). Writes DIR/bd_rate.csv and DIR/report.md (default
DIR: a ``compare`` folder next to POINTS.csv) with the same statistics as ``analysis.report``,
which is this code on an experiment's evaluation points. Bad input: one line, exit 2.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from .bd import METHODS, MIN_POINTS
from .cli import ArgumentParser, run
from .errors import AnalysisError
from .interval import METHOD
from .verdict import (KEYS, MIN_IMAGES, MIN_OVERLAP, MIN_SEEDS, Comparison, check_unique, compare, errored_rows,
                      family_size, images_needed, shortfall)

QUALITIES = ("psnr", "ms_ssim_db")


def read_points(path: str | os.PathLike[str], reference: str | None = None,
                quality: str = "psnr") -> tuple[pd.DataFrame, str]:
    """POINTS.csv checked for what a BD-rate needs; returns (points, reference name). Rows with an
    ``error`` are kept as they are (:func:`analysis.verdict.compare` makes their configuration incomplete)."""
    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"points file not found: {path}")
    try:
        points = pd.read_csv(path, dtype={"configuration": str, "image": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise AnalysisError(f"unreadable {path}: {exc}".splitlines()[0]) from None
    needed = (*KEYS, "bpp", quality)
    missing = [column for column in needed if column not in points.columns]
    if missing:
        raise AnalysisError(f"{path.name} has no '{missing[0]}' column (needs {', '.join(needed)})")
    if points.empty:
        raise AnalysisError(f"{path.name} has no rows")
    for column in ("lmbda", "bpp", quality):
        points[column] = pd.to_numeric(points[column], errors="coerce")
    bad = points[list(needed)].isna() & ~errored_rows(points).to_numpy()[:, None]
    if bad.any(axis=None):
        row, column = next((r, c) for r, c in zip(*bad.to_numpy().nonzero()))
        raise AnalysisError(f"{path.name}: {int(bad.any(axis=1).sum())} row(s) with a missing, NaN or non-numeric "
                            f"value (first: line {row + 2}, column {needed[column]})")
    if (points["bpp"] <= 0).any():
        raise AnalysisError(f"{path.name}: bpp must be > 0 (line {int((points['bpp'] <= 0).to_numpy().argmax()) + 2})")
    check_unique(points[~errored_rows(points)], path.name)
    reference = _reference(points, reference, path.name)
    if set(points["configuration"]) == {reference}:
        raise AnalysisError(f"nothing to compare: {path.name} has only the reference configuration '{reference}'")
    lambdas = points.groupby("configuration")["lmbda"].nunique()
    few = lambdas[lambdas < MIN_POINTS]
    if len(few):
        raise AnalysisError(f"configuration '{few.index[0]}' has points at {few.iloc[0]} λ(s); a BD-rate needs "
                            f"≥ {MIN_POINTS} per configuration")
    points["is_off"] = points["configuration"] == reference
    return points, reference


def _reference(points: pd.DataFrame, reference: str | None, name: str) -> str:
    configurations = sorted(set(points["configuration"]))
    if reference is not None:
        if reference not in configurations:
            raise AnalysisError(f"unknown reference '{reference}': {name} has {', '.join(configurations)}")
        return reference
    if "is_off" not in points:
        raise AnalysisError(f"no reference: pass --reference NAME or give {name} an is_off column")
    flags = points["is_off"].map(lambda v: {"true": True, "1": True, "false": False, "0": False}.get(str(v).strip().lower()))
    if flags.isna().any():
        raise AnalysisError(f"{name}: is_off must be true/false or 1/0, not {points['is_off'][flags.isna()].iloc[0]!r}")
    marked = sorted(set(points.loc[flags.astype(bool), "configuration"]))
    if len(marked) != 1:
        raise AnalysisError(f"is_off marks {len(marked)} configurations ({', '.join(marked) or 'none'}): pass "
                            "--reference NAME")
    return marked[0]


def write_comparison(comparison: Comparison, out: str | os.PathLike[str], title: str) -> Path:
    """DIR/bd_rate.csv and DIR/report.md for a comparison; returns the report's path."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    comparison.table.to_csv(folder / "bd_rate.csv", index=False)
    points = comparison.points
    images = sorted(set(points["image"]))
    lines = [f"# BD-rate vs `{comparison.reference}`: {title}", "",
             f"- Configurations: {points['configuration'].nunique()}; reference `{comparison.reference}`.",
             f"- {len(images)} image(s): {', '.join(images[:12])}{', ...' if len(images) > 12 else ''}.",
             f"- λ: {', '.join(f'{x:g}' for x in sorted(points['lmbda'].unique()))}; BD method `{comparison.method}`; "
             f"distortion {comparison.quality}.",
             "- BD-rate: negative = fewer bits than the reference at the same quality (better)."]
    sections = ["\n".join(lines), verdict_section(comparison, "## Verdict: BD-rate vs the reference"),
                method_section(comparison), "## Caveats\n\n" + "\n".join(f"- {note}" for note in evidence_notes(comparison)
                                                                           or ["None."])]
    report = folder / "report.md"
    report.write_text("\n\n".join(sections) + "\n")
    return report


# --- the verdict part of a report (analysis.report writes the same) ------------------------------

def verdict_section(comparison: Comparison, title: str, extra: tuple[str, Mapping[str, object]] | None = None) -> str:
    """The headline, then one row per configuration with its interval, the interval's level, whether its
    seeds are paired with the reference's, and the share of undefined replicates."""
    reference = comparison.reference
    headers = ["configuration", "seeds", "seeds paired", "images", f"BD-rate vs {reference} [CI]", "interval",
               "undefined replicates", f"BD-PSNR vs {reference}", "status"] + ([extra[0]] if extra else [])
    rows = []
    for row in comparison.table.itertuples():
        paired = "" if row.is_off or _isnan(row.se) else ("paired" if row.paired_seeds else "unpaired")
        rows.append([f"`{row.configuration}`" + (" (reference)" if row.is_off else ""), _count(row.n_seeds), paired,
                     _count(row.n_images), _interval(row.bd_rate_vs_off, row.ci_low, row.ci_high, "{:+.2f} %"),
                     format_number(row.confidence, "{:.2%}"),
                     "" if row.is_off else format_number(row.undefined_share, "{:.1%}"),
                     format_number(row.bd_psnr_vs_off, "{:+.3f} dB"), row.status]
                    + ([_extra(extra[1].get(row.configuration))] if extra else []))
    return "\n".join([title, "", headline(comparison), "", table_markdown(headers, rows)])


def headline(comparison: Comparison) -> str:
    """One paragraph: the verdict, or why there is none."""
    table = comparison.table
    others = table[~table["is_off"]]
    if others.empty:
        return "Only the reference has points: nothing to compare."
    status = others["status"].astype(str)
    parts = []
    better = others[status == "better"].sort_values("ci_high")
    indicative = others[status.str.startswith("indicative")]
    if len(better):
        best = better.iloc[0]
        parts.append(f"**`{best['configuration']}` beats {comparison.reference}**: BD-rate {best['bd_rate_vs_off']:+.2f} % "
                     f"[{best['ci_low']:+.2f}, {best['ci_high']:+.2f}] ({best['confidence']:.1%} interval, Holm over "
                     f"K = {family_size(table)}"
                     + (f", chosen among N = {_searched(table)} searched" if _searched(table) else "")
                     + f") over {best['n_seeds']} seed(s) and {best['n_images']} test images."
                     + (f" {len(better) - 1} more configuration(s) are better too." if len(better) > 1 else ""))
    elif len(indicative) and not status.isin(["worse", "not significant"]).any():
        lowest = indicative.sort_values("bd_rate_vs_off").iloc[0]
        short = sorted(set(indicative["status"].str.removeprefix("indicative: ")))
        parts.append(f"**No verdict: the evidence is only indicative** ({'; '.join(short)}; a verdict needs ≥ "
                     f"{MIN_SEEDS} seeds and ≥ {MIN_IMAGES} test images, more when several configurations are judged). "
                     f"Lowest BD-rate: `{lowest['configuration']}` "
                     f"{lowest['bd_rate_vs_off']:+.2f} % [{lowest['ci_low']:+.2f}, {lowest['ci_high']:+.2f}], "
                     "not a verdict.")
    else:
        parts.append(f"**No configuration is significantly better than {comparison.reference}**.")
    counts = [(status == "worse").sum(), len(indicative) if len(better) or status.isin(["worse", "not significant"]).any()
              else 0, status.str.startswith("unreliable").sum(), status.str.startswith("partial overlap").sum(),
              status.str.startswith("undefined").sum(), status.str.startswith("incomplete").sum()]
    words = ["significantly worse", "only indicative (too few seeds or images, or a rare kind of image: no verdict)",
             "unreliable (a jackknife replicate without a BD-rate: no verdict)",
             f"on a partial overlap (< {MIN_OVERLAP:.0%} of the quality range: no verdict)", "without a defined BD-rate",
             "incomplete (an errored seed: not judged on its survivors)"]
    parts += [f"{int(n)} configuration(s) are {word}." for n, word in zip(counts, words) if n]
    return " ".join(parts)


def method_section(comparison: Comparison) -> str:
    k, n = family_size(comparison.table), _searched(comparison.table)
    return "\n".join([
        "## How the interval and the verdict are computed", "",
        METHOD.format(method=comparison.method),
        "",
        f"- Multiplicity: K = {k}: the configurations judged against off together (those with a defined, reliable "
        f"BD-rate on ≥ {MIN_SEEDS} seeds and ≥ {MIN_IMAGES} images)"
        + (f", at least the N = {n} configurations the search tried, since the judged ones were chosen among them on "
           "validation" if n else "") + ". Holm's step-down: the "
        "configuration with the smallest p-value is judged at 1 − 5 %/K, the next at 1 − 5 %/(K − 1), … until one is "
        "not significant; each interval is shown at the level it was judged at (\"interval\" column). The chance "
        "that any configuration with no real effect is called better or worse: nominally 5 % (family-wise), at most "
        "8 % in the simulations of docs/verdict.md.",
        "- Selection: when the configurations were chosen as the best of N on the validation set with the same "
        "trained models, K is at least N (`--searched N`; analysis.report: every configuration the search tried), "
        "because the one shown is the best of N. A fresh run of the chosen configuration (new seeds, K = 1) avoids "
        "that price.",
        f"- Verdict rule: \"better\" / \"worse\" only when the interval lies below / above 0 *and* there are ≥ "
        f"{MIN_SEEDS} seeds and enough test images: {MIN_IMAGES} for one configuration, {images_needed(3)} for 3, "
        f"{images_needed(6)} for 6 (so that a kind of image making up 1/8 of the images, on which a configuration "
        "may be much worse, is in the test set for every judged configuration with probability ≥ 95 %: no interval "
        "can see a kind that is absent); otherwise the status says \"indicative: …\" and what is short. Also "
        "\"indicative\" when one or two test images lie far from the rest on the other side of the verdict: a kind "
        "of image the configuration does very differently on, too rare in this set to weigh. Set by simulation "
        "(docs/verdict.md).",
        "- Every jackknife replicate must have a BD-rate: one without (a leave-one-out curve that is not monotone: "
        "the curve rests on that image or seed) makes the status \"unreliable\" (the interval from the rest is shown, "
        "no verdict); their share is the \"undefined replicates\" column (`undefined_share` in bd_rate.csv).",
        f"- Partial overlap: when the two curves share less than {MIN_OVERLAP:.0%} of their quality range the BD-rate "
        "rests on a corner of them: shown, no verdict.",
        "- A configuration with an errored seed is \"incomplete\" and not judged on its surviving seeds.",
    ])


def _searched(table: pd.DataFrame) -> int:
    """N: how many configurations the judged ones were chosen from on validation (0: not chosen)."""
    searched = table["searched"].dropna()
    return int(searched.max()) if len(searched) else 0


def evidence_notes(comparison: Comparison) -> list[str]:
    """What the evidence behind the table lacks, one note each."""
    notes = []
    table = comparison.table[~comparison.table["status"].str.startswith("incomplete")]
    seeds, images = int(table["n_seeds"].min()), int(table["n_images"].min())
    short = shortfall(seeds, images)
    if short:
        notes.append(f"Too little evidence for a verdict ({short}): "
                     + ("with 1 seed the interval covers test-image sampling only, not training noise; "
                        if seeds < 2 else "") + f"run ≥ {MIN_SEEDS} seeds and judge on ≥ {MIN_IMAGES} test images.")
    unpaired = table[(table["paired_seeds"] == False) & table["se"].notna()]   # noqa: E712 (NaN-safe)
    if len(unpaired):
        notes.append("Seeds not paired with the reference's (not the same initial weights and batch order): "
                     + ", ".join(f"`{c}`" for c in unpaired["configuration"])
                     + "; their seed level leaves seeds out on each side apart.")
    return notes


def table_markdown(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def _interval(value: float, low: float, high: float, template: str) -> str:
    if _isnan(value):
        return "n/a"
    text = template.format(value)
    return text if _isnan(low) else f"{text} [{template.format(low)}, {template.format(high)}]"


def format_number(value: float, template: str) -> str:
    """``template`` filled with ``value``, or "n/a" for NaN."""
    return "n/a" if _isnan(value) else template.format(value)


def _count(value: object) -> object:
    return "" if _isnan(value) else int(value)


def _extra(value: object) -> object:
    return "" if value is None or _isnan(value) or value is pd.NA else value


def _isnan(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    def body() -> Path:
        args = _parser().parse_args(argv)
        points, reference = read_points(args.points, args.reference, args.quality)
        if args.searched < 0:
            raise AnalysisError(f"--searched must be >= 0, got {args.searched}")
        out = args.out if args.out is not None else Path(args.points).resolve().parent / "compare"
        comparison = compare(points, reference, args.quality, args.method, searched=args.searched)
        return write_comparison(comparison, out, Path(args.points).name)

    return run("analysis.compare", body)


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m analysis.compare", description=__doc__.splitlines()[0])
    parser.add_argument("points", help="CSV: configuration, seed, lmbda, image, bpp, psnr [, is_off]")
    parser.add_argument("--reference", help="the configuration to compare with (default: the one is_off marks)")
    parser.add_argument("--out", help="output folder (default: compare/ next to POINTS.csv)")
    parser.add_argument("--method", choices=METHODS, default="pchip",
                        help="BD interpolation: pchip (default), cubic (classic VCEG-M33), akima")
    parser.add_argument("--quality", choices=QUALITIES, default="psnr", help="distortion column (default psnr)")
    parser.add_argument("--searched", type=int, default=0, metavar="N",
                        help="the configurations were chosen as the best of N on validation (default 0: not chosen)")
    return parser


if __name__ == "__main__":
    sys.exit(main())
