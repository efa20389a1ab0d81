"""The report.md text: the verdict first, then how it was reached and what it leaves out."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from . import budget
from .anchors import about, published_claims
from .compare import evidence_notes, method_section, table_markdown as _table, verdict_section
from .compare import format_number as _number
from .experiment import CONFIG_PREFIX
from .figures import FigureSpec, ReportData
from .points import eligible_trials, ranking, stopped_configurations
from .verdict import MIN_IMAGES


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
        f"- Points: {_test_set(experiment.path) if data.source == 'test' else 'VALIDATION set'}; "
        f"{len(images)} image(s): {shown}.",
        f"- λ: {', '.join(f'{x:g}' for x in sorted(points['lmbda'].unique())) or 'none'}; reference: "
        f"`{data.reference}` (regularizers off); BD method `{data.method}`; distortion "
        f"{'PSNR' if data.quality == 'psnr' else 'MS-SSIM (dB), the models were trained for MS-SSIM'}.",
        "- BD-rate: negative = fewer bits than off at the same quality (better). BD-PSNR (BD of the distortion "
        "axis, dB): positive = better.",
    ]
    return "\n".join(lines)


def _test_set(experiment_dir) -> str:
    """Call the test set held out only when ``analysis.evaluate`` checked it (evaluation.json)."""
    path = Path(experiment_dir) / "evaluation" / "evaluation.json"
    try:
        held_out = json.loads(path.read_text()).get("held_out") or {}
    except (OSError, ValueError):
        held_out = {}
    if held_out.get("checked") and held_out.get("shared", 0) == 0:
        against = ", ".join(str(c.get("split")) for c in held_out.get("compared", []))
        return f"TEST set, checked held out (no image shared with {against or 'the training data'}), real bitstreams"
    return ("TEST set, real bitstreams, **held-out NOT checked** (evaluated before the check existed: "
            "rerun `analysis.evaluate` into a fresh folder)")


def _verdict(data: ReportData) -> str:
    if data.source != "test":
        return "\n".join(["## BD-rate vs off on VALIDATION (no verdict)", "",
                          "No verdict without a held-out test evaluation (see above).", "",
                          _validation_table(data)])
    ranks = dict(zip(data.table["configuration"], data.table["val_rank"]))
    section = verdict_section(data.comparison, "## Verdict: BD-rate vs off", ("validation rank", ranks))
    return "\n\n".join(part for part in (section, _why_no_bd_rate(data)) if part)


def _why_no_bd_rate(data: ReportData) -> str:
    """A line per configuration without a BD-rate (analysis.budget), or one when ASHA left only off."""
    steps_per_epoch, steps = budget.trial_steps(eligible_trials(data.experiment))
    why = budget.section(data.points, data.experiment.history, data.table, data.reference, data.quality,
                         steps_per_epoch, steps)
    stopped = stopped_configurations(data.experiment)
    if data.table["is_off"].all() and len(stopped):
        why = "\n".join([why or budget.TITLE, "", f"- ASHA stopped every other configuration ({len(stopped)}, below) "
                         "before its last epoch: nothing is compared at this budget. What would: `--scheduler fifo` "
                         "(each trained to the end), or more `--num-samples` so that some outlast the rungs."])
    return why


def _validation_table(data: ReportData) -> str:
    rows = [[f"`{row.configuration}`" + (" (reference)" if row.is_off else ""), row.n_seeds,
             _number(row.bd_rate_vs_off, "{:+.2f} %"), _number(row.bd_psnr_vs_off, "{:+.3f} dB"), row.status,
             "" if pd.isna(row.val_rank) else int(row.val_rank)] for row in data.table.itertuples()]
    headers = ["configuration", "seeds", "BD-rate vs off", "BD-PSNR vs off", "status", "validation rank"]
    return _table(headers, rows) if rows else "No configuration has points."


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
    latents = _latents_read(trials)
    headers = ["configuration", *(f"{label} {pair}" for pair in pairs for label in ("R²", "CKA"))]
    return ("## What Phase 2 changed: inter-scale R²\n\nHeld-out linear predictability of each coarse scale from "
            "the finer one's Haar sub-bands (validation, last epoch, mean over λ and seeds; folds are whole images, "
            "the ridge chosen on the fit folds; reads ≈ 0 for independent scales). In brackets: minus off; in square "
            "brackets: the 95 % bootstrap interval over the validation images (mean of the runs' intervals). An upper "
            "end of 1.00 means too few positions per feature for one: the reading is then biased low (a true 0.5 reads "
            "about 0.13 on the three built-in validation images), so read differences against off, not absolute values. "
            "CKA: cross-image linear CKA, a second measure that fits nothing; where R² and CKA "
            "move in opposite directions, trust neither. Lower than off: the scales share less; equal: the term did "
            "not change the representation." + (f" {latents}" if latents else "") + "\n\n" + _table(headers, rows))


def _latents_read(trials: pd.DataFrame) -> str:
    """Which scale latents the measure (and Phase 2) read, per model: each trial's ``scale_latents``,
    ``model`` resolved to what the model declares (docs/regularizers.md, "Latents read, per model")."""
    columns = [CONFIG_PREFIX + "model_name", CONFIG_PREFIX + "scale_latents"]
    if not set(columns) <= set(trials.columns):
        return ""
    from trainable.models import create_model, model_names
    from trainable.models.interface import default_latents

    def resolved(model: str, choice: str) -> str:
        return default_latents(create_model(model), choice) if model in model_names() else choice

    read = sorted({(model, resolved(model, choice))
                   for model, choice in trials[columns].drop_duplicates().itertuples(index=False)})
    return "Latents read: " + ", ".join(f"{model} `{latents}`" for model, latents in read) + "."


def _method(data: ReportData) -> str:
    if data.source != "test":
        return ("## How BD-rates are computed\n\nPoint estimates only: per λ, the validation bpp and PSNR "
                "averaged over seeds, BD-rate vs off's curve. No interval (one validation mean per model).")
    return method_section(data.comparison)


def _stopped(data: ReportData) -> str:
    stopped = stopped_configurations(data.experiment)
    lines = ["## Stopped by ASHA (never in the BD table)", ""]
    if stopped.empty:
        return "\n".join(lines + ["None."])
    rows = [[f"`{r.configuration}`", r.seeds, int(r.stopped_epoch) if not math.isnan(r.stopped_epoch) else "?",
             _number(r.rd_score, "{:.4f}")] for r in stopped.itertuples()]
    return "\n".join(lines + [_table(["configuration", "seeds stopped (ids)", "stopped at epoch", "rd_score when stopped"], rows)])


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
    if data.experiment.status_source != "results.csv":
        notes.append("No results.csv (the search is still running or was interrupted): statuses are inferred.")
    if data.source == "test":
        notes += evidence_notes(data.comparison)
    if data.source == "test" and len(data.points) and data.points["image"].nunique() < MIN_IMAGES:
        notes.append("Evaluate on a larger set (`--dataset` of analysis.evaluate, e.g. Kodak's 24 images): the "
                     "built-in test split is a sanity check.")
    if dropped:
        notes.append(f"{dropped} evaluated points belong to trials no longer eligible (results.csv changed since "
                     "the evaluation) and were left out.")
    notes.append("Configurations were chosen on the validation set; only test-set numbers are a verdict.")
    return "## Caveats\n\n" + "\n".join(f"- {note}" for note in notes)
