"""The report.md text: the verdict first, then how it was reached and what it leaves out."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from .anchors import about, published_claims
from .figures import FigureSpec, ReportData
from .interval import MAX_UNDEFINED, METHOD, RNG_SEED
from .points import eligible_trials, ranking, stopped_configurations


def render(data: ReportData, figures: Sequence[FigureSpec]) -> str:
    """Markdown for the whole report; every section states what is missing rather than omit it."""
    sections = [
        _header(data),
        _verdict(data),
        _inter_scale(data),
        _method(data),
        _stopped(data),
        _not_evaluated(data),
        _anchor(data),
        _published(),
        _caveats(data),
        "## Figures\n\n" + "\n\n".join(f"![{spec.filename}]({spec.filename})\n\n{spec.caption}." for spec in figures),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def _header(data: ReportData) -> str:
    experiment, points = data.experiment, data.points
    lines = [f"# Regularizer verdict: {experiment.name}", ""]
    if data.source == "validation":
        lines += [
            "> **NO VERDICT: there is no test-set evaluation yet.** Everything below uses the VALIDATION points, the",
            "> set the search chose configurations on, so the numbers are optimistic for the chosen configurations",
            "> and carry no interval. Run `python -m analysis.evaluate "
            f"{experiment.path}` and then this report again.", "",
        ]
    images = points.drop_duplicates("image")
    shown = ", ".join(f"{r.image} ({int(r.width)}×{int(r.height)})" for r in images.itertuples()
                      if hasattr(r, "width")) if data.source == "test" else "validation mean"
    lines += [
        f"- Experiment: `{experiment.path}` ({len(experiment.trials)} trials, status from {experiment.status_source}).",
        f"- Points: {'held-out TEST set, real bitstreams' if data.source == 'test' else 'VALIDATION set'}; "
        f"{len(images)} image(s): {shown}.",
        f"- λ: {', '.join(f'{x:g}' for x in sorted(points['lmbda'].unique())) or 'none'}; reference: "
        f"`{data.reference}` (regularizers off); BD method `{data.method}`; distortion "
        f"{'PSNR' if data.quality == 'psnr' else 'MS-SSIM (dB), the models were trained for MS-SSIM'}.",
        "- BD-rate: negative = fewer bits than off at the same quality (better). BD-PSNR (BD of the distortion "
        "axis, dB): positive = better.",
    ]
    return "\n".join(lines)


def _verdict(data: ReportData) -> str:
    table = data.table
    rows = []
    for row in table.itertuples():
        rows.append([f"`{row.configuration}`" + (" (reference)" if row.is_off else ""), row.n_seeds,
                     _interval(row.bd_rate_vs_off, row.ci_low, row.ci_high, "{:+.2f} %"),
                     _interval(row.bd_psnr_vs_off, row.bd_psnr_ci_low, row.bd_psnr_ci_high, "{:+.3f} dB"),
                     row.status, "" if pd.isna(row.val_rank) else int(row.val_rank)])
    headers = ["configuration", "seeds", "BD-rate vs off [95 % CI]", "BD-PSNR vs off [95 % CI]", "status",
               "validation rank"]
    title = "## Verdict: BD-rate vs off" if data.source == "test" else "## BD-rate vs off on VALIDATION (no verdict)"
    lines = [title, "", _answer(data), "", _table(headers, rows) if rows else "No configuration has points."]
    return "\n".join(lines)


def _answer(data: ReportData) -> str:
    others = data.table[~data.table["is_off"]]
    if data.source != "test":
        return "No verdict without a held-out test evaluation (see above)."
    if others.empty:
        return "Only off was evaluated: nothing to compare."
    better = others[others["status"] == "better"].sort_values("ci_high")
    undefined = others[others["status"].str.startswith("undefined")]
    parts = []
    if len(better):
        best = better.iloc[0]
        parts.append(f"**`{best['configuration']}` beats off**: BD-rate {best['bd_rate_vs_off']:+.2f} % "
                     f"[{best['ci_low']:+.2f}, {best['ci_high']:+.2f}] over {best['n_seeds']} seed(s) and "
                     f"{best['n_images']} test images.")
    else:
        parts.append("**No configuration is significantly better than off** on this test set.")
    worse = others[others["status"] == "worse"]
    if len(worse):
        parts.append(f"{len(worse)} configuration(s) are significantly worse.")
    if len(undefined):
        parts.append(f"{len(undefined)} configuration(s) have no defined BD-rate (see status).")
    return " ".join(parts)


def _inter_scale(data: ReportData) -> str:
    """Did Phase 2 change the representation? Per pair, the held-out inter-scale R² at each trial's
    last epoch (validation), its interval over the validation images and the cross-image CKA (a
    second measure, no fit), each the mean over λ and seeds, next to off's: a regularizer that leaves
    them where off has them did not change what the scales share."""
    history = data.experiment.history
    pairs = sorted(c.removeprefix("val_inter_scale_r2_") for c in history if c.startswith("val_inter_scale_r2_"))
    trials = eligible_trials(data.experiment)
    if not pairs or trials.empty:
        return "## What Phase 2 changed: inter-scale R²\n\nNo `val_inter_scale_r2_*` metrics in this experiment."
    history = history[history["trial_id"].isin(trials["trial_id"])]
    last = history[history["epoch"] == history.groupby("trial_id")["epoch"].transform("max")]
    columns = [f"val_inter_scale_{kind}_{pair}" for pair in pairs for kind in ("r2", "lo", "hi", "cka")]
    means = last.reindex(columns=["configuration", *columns]).groupby("configuration")[columns].mean()
    off = means.loc[data.reference] if data.reference in means.index else None

    def cell(name: str, row: pd.Series, kind: str, pair: str) -> str:
        column = f"val_inter_scale_{kind}_{pair}"
        text = _number(row[column], "{:.3f}")
        if off is not None and name != data.reference and pd.notna(row[column]) and pd.notna(off[column]):
            text += f" ({row[column] - off[column]:+.3f})"
        if kind == "r2" and pd.notna(row[f"val_inter_scale_lo_{pair}"]):
            text += f" [{row[f'val_inter_scale_lo_{pair}']:.2f}, {row[f'val_inter_scale_hi_{pair}']:.2f}]"
        return text

    rows = [[name, *(cell(name, row, kind, pair) for pair in pairs for kind in ("r2", "cka"))]
            for name, row in means.iterrows()]
    headers = ["configuration", *(f"{label} {pair}" for pair in pairs for label in ("R²", "CKA"))]
    return ("## What Phase 2 changed: inter-scale R²\n\nHeld-out linear predictability of each coarse scale from "
            "the finer one's Haar sub-bands (validation, last epoch, mean over λ and seeds; folds are whole images, "
            "the ridge chosen on the fit folds; reads ≈ 0 for independent scales). In brackets: minus off; in square "
            "brackets: the 95 % bootstrap interval over the validation images (mean of the runs' intervals; three "
            "images make it rough). CKA: cross-image linear CKA, a second measure that fits nothing; where R² and CKA "
            "move in opposite directions, trust neither. Lower than off: the scales share less; equal: the term did "
            "not change the representation.\n\n" + _table(headers, rows))


def _method(data: ReportData) -> str:
    if data.source != "test":
        return ("## How BD-rates are computed\n\nPoint estimates only: per λ, the validation bpp and PSNR "
                "averaged over seeds, BD-rate vs off's curve. No interval (one validation mean per model).")
    return ("## How the interval is computed\n\n" + METHOD.format(method=data.method, n_boot=data.n_boot, seed=RNG_SEED)
            + f" A configuration whose BD-rate is undefined in more than {MAX_UNDEFINED:.0%} of replicates "
            "(a resampled curve not monotone) is \"undefined\". `ci_low`/`ci_high` in bd_rate.csv are this interval; "
            "`boot_defined` is the share of replicates with a defined BD-rate.")


def _stopped(data: ReportData) -> str:
    stopped = stopped_configurations(data.experiment)
    lines = ["## Stopped by ASHA (never in the BD table)", ""]
    if stopped.empty:
        return "\n".join(lines + ["None."])
    rows = [[f"`{r.configuration}`", r.seeds, int(r.stopped_epoch) if not math.isnan(r.stopped_epoch) else "?",
             _number(r.rd_score, "{:.4f}")] for r in stopped.itertuples()]
    return "\n".join(lines + [_table(["configuration", "seeds", "stopped at epoch", "rd_score when stopped"], rows)])


def _not_evaluated(data: ReportData) -> str:
    lines = ["## Not in the table", ""]
    ranked = ranking(data.experiment)
    missing = ranked[~ranked["configuration"].isin(data.table["configuration"])]
    if len(missing):
        lines.append(f"Not evaluated on the test set (below the top K by validation rd_score): "
                     + ", ".join(f"`{c}` (rank {r})" for c, r in zip(missing["configuration"], missing["rank"])) + ".")
    trials = data.experiment.trials
    failed = trials[trials["status"] == "ERROR"]
    for row in failed.head(10).itertuples():
        lines.append(f"- errored trial `{row.trial_id}` (`{row.configuration}`, seed {row.seed}): {row.error or 'no message'}")
    if len(failed) > 10:
        lines.append(f"- … and {len(failed) - 10} more errored trials (see results.csv)")
    running = trials[~trials["status"].isin(["TERMINATED", "STOPPED", "ERROR"])]
    if len(running):
        lines.append(f"- {len(running)} trial(s) not finished ({', '.join(sorted(set(running['status'])))}): left out.")
    return "\n".join(lines) if len(lines) > 2 else "\n".join(lines + ["Nothing left out."])


def _anchor(data: ReportData) -> str:
    anchor, refused = data.anchor_name, data.anchor_refusal
    if not anchor:
        return "## Published anchor\n\nNone requested (`--anchor dataset:series`; compared only on that dataset)."
    if refused:
        return f"## Published anchor\n\n{refused}."
    rows = [[f"`{r.configuration}`", _number(r.bd_rate_vs_anchor, "{:+.2f} %")] for r in data.table.itertuples()]
    return "\n".join(["## Published anchor", "", f"BD-rate vs `{anchor}` ({data.anchor.source}), mean curve over "
                      "seeds and images, point estimate:", "", _table(["configuration", f"BD-rate vs {anchor}"], rows)])


def _published() -> str:
    claims = published_claims()
    lines = ["## Published figures (context)", "", about()]
    if claims is not None:
        lines += ["", claims.about, ""]
        headers = ["model", *[f"{column} (%)" for column in claims.table.columns]]
        lines.append(_table(headers, [[name, *[f"{v:+.2f}" for v in row]] for name, row in claims.table.iterrows()]))
        lines += [""] + [f"- {note}" for note in claims.notes]
    return "\n".join(lines)


def _caveats(data: ReportData) -> str:
    dropped = data.dropped
    notes = []
    table, experiment = data.table, data.experiment
    if data.experiment.status_source != "results.csv":
        notes.append("No results.csv (the search is still running or was interrupted): statuses are inferred.")
    if data.source == "test" and (table["n_seeds"] == 1).any():
        notes.append("With 1 seed the interval covers test-image sampling only, not training noise: run the search "
                     "with `--seeds 3` or more before trusting a \"better\".")
    elif data.source == "test" and (table["n_seeds"] < 5).any():
        notes.append(f"With {int(table['n_seeds'].min())} seeds the seed level of the bootstrap has few distinct "
                     "resamples; the interval's seed part is rough.")
    if data.source == "test" and len(data.points) and data.points["image"].nunique() < 10:
        notes.append(f"{data.points['image'].nunique()} test images: a small set (the built-in split is a sanity "
                     "check); pass `--dataset` to analysis.evaluate for a real verdict.")
    if dropped:
        notes.append(f"{dropped} evaluated points belong to trials no longer eligible (results.csv changed since "
                     "the evaluation) and were left out.")
    eligible = eligible_trials(experiment)
    partial = eligible.groupby("configuration")["seed"].nunique()
    if len(partial) and partial.nunique() > 1:
        notes.append("Configurations have different numbers of seeds (errored trials dropped): "
                     + ", ".join(f"`{c}` {n}" for c, n in partial.items()) + ".")
    notes.append("Configurations were chosen on the validation set; only test-set numbers are a verdict.")
    return "## Caveats\n\n" + "\n".join(f"- {note}" for note in notes)


def _interval(value: float, low: float, high: float, template: str) -> str:
    if _isnan(value):
        return "n/a"
    text = template.format(value)
    return text if _isnan(low) else f"{text} [{template.format(low)}, {template.format(high)}]"


def _number(value: float, template: str) -> str:
    return "n/a" if _isnan(value) else template.format(value)


def _isnan(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)
