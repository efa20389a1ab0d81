"""The report.md text: what a researcher would show a colleague about one experiment."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .anchors import Anchor, PublishedClaims
from .bd import MIN_POINTS
from .groups import format_value

LOW_OVERLAP = 0.5


def render(experiment: pd.DataFrame, points: pd.DataFrame, table: pd.DataFrame, anchor: Anchor | None,
           claims: PublishedClaims | None, about: str, method: str, figures: Sequence[str]) -> str:
    """Markdown for the whole report; every section states what is missing rather than omit it."""
    sections = [
        _header(experiment, points, anchor, method),
        _trials(experiment, points),
        _best(table, points),
        _per_group(table, anchor),
        _per_lambda(points),
        _published(claims, about, anchor),
        _caveats(experiment, points, table, anchor),
        "## Figures\n\n" + "\n".join(f"![{name}]({name})" for name in figures),
    ]
    return "\n\n".join(sections) + "\n"


def _header(experiment: pd.DataFrame, points: pd.DataFrame, anchor: Anchor | None, method: str) -> str:
    select = points.attrs.get("select", "final")
    rule = "last validated epoch" if select == "final" else "epoch with the lowest val_loss"
    lines = [
        f"# Spectral-regularizer search report: {_name(experiment)}",
        "",
        f"- Experiment: `{experiment.attrs.get('path', '?')}`",
        f"- RD point per trial: {rule} (`--select {select}`); rate `{points.attrs.get('rate', 'val_bpp')}`, "
        f"quality `{points.attrs.get('quality', 'val_psnr')}`; BD method `{method}`.",
        "- BD-rate: negative = fewer bits for the same quality (better). BD-PSNR: positive = better.",
    ]
    if anchor is not None:
        lines.append(f"- Published anchor: `{anchor.name}` (source: {anchor.source}).")
    return "\n".join(lines)


def _trials(experiment: pd.DataFrame, points: pd.DataFrame) -> str:
    trials = experiment.drop_duplicates("trial_id")
    counts = trials["status"].value_counts()
    lines = ["## Trials", "", _table(["status", "trials"], [[s, int(n)] for s, n in counts.items()])]
    lambdas = sorted(points["lmbda"].unique())
    lines += ["", f"{len(trials)} trials; {points['group'].nunique()} configurations with validated points; "
              f"{len(lambdas)} λ values: {', '.join(f'{x:g}' for x in lambdas) or 'none'}."]
    failed = trials[trials["status"] == "ERROR"]
    if len(failed):
        lines += ["", "Failed trials:"]
        lines += [f"- `{row.trial_id}`: {row.error or 'no message'}" for row in failed.head(10).itertuples()]
        if len(failed) > 10:
            lines.append(f"- … and {len(failed) - 10} more (see results.csv / error.txt)")
    return "\n".join(lines)


def _best(table: pd.DataFrame, points: pd.DataFrame) -> str:
    lines = ["## Best configuration", ""]
    if points.empty:
        return "\n".join(lines + ["No trial has reported a validated epoch yet: nothing to rank."])
    tested = table[~table["is_baseline"]]
    ranked = tested[tested["bd_rate_vs_baseline"].notna()].sort_values("bd_rate_vs_baseline")
    if ranked.empty:
        if tested.empty:
            why = "every configuration has both regularizers off, so there is nothing to compare with a baseline"
        else:
            why = "; ".join(sorted(set(tested["bd_rate_vs_baseline_reason"].dropna())))
        return "\n".join(lines + [
            f"**No best configuration by BD-rate**: BD-rate vs baseline is undefined for every configuration: "
            f"{why}. The table *Best configuration per λ* below ranks configurations by validation loss at "
            f"each λ instead; treat it as a hint, not a verdict.",
        ])
    best = ranked.iloc[0]
    baseline = table.loc[table["group"] == best["baseline_group"], "label"].iloc[0]
    lines.append(
        f"**{best['label']}**: BD-rate {best['bd_rate_vs_baseline']:+.2f} % and BD-PSNR "
        f"{best['bd_psnr_vs_baseline']:+.3f} dB vs its baseline ({baseline}), over {best['n_lambdas']} λ "
        f"({best['lambdas']})."
    )
    if best["bd_rate_vs_baseline"] >= 0:
        lines += ["", "No configuration beats its baseline: even the lowest BD-rate is not negative."]
    settings = [f"`{key}={format_value(best[key])}`" for key in points.attrs.get("hparams", [])
                if key in best and best[key] is not None and not _isnan(best[key])]
    lines += ["", "Full settings: " + ", ".join(settings)]
    return "\n".join(lines)


def _per_group(table: pd.DataFrame, anchor: Anchor | None) -> str:
    target = anchor.name if anchor else "anchor"
    ranked = table.sort_values(["is_baseline", "bd_rate_vs_baseline"], ascending=[False, True], na_position="last")
    rows = []
    for row in ranked.itertuples():
        reasons = dict.fromkeys(r for r in (row.bd_rate_vs_baseline_reason, row.bd_rate_vs_anchor_reason)
                                if isinstance(r, str))
        rows.append([
            row.label + (" **[baseline]**" if row.is_baseline else ""), row.n_lambdas,
            _number(row.bd_rate_vs_baseline, "{:+.2f} %"), _number(row.bd_psnr_vs_baseline, "{:+.3f} dB"),
            _number(row.bd_rate_vs_anchor, "{:+.2f} %"), "; ".join(reasons),
        ])
    headers = ["configuration", "λ points", "BD-rate vs baseline", "BD-PSNR vs baseline", f"BD-rate vs {target}",
               "why n/a"]
    return "## BD-rate per configuration\n\n" + (_table(headers, rows) if rows else "No configuration yet.")


def _per_lambda(points: pd.DataFrame) -> str:
    lines = ["## Best configuration per λ (lowest validation loss)", ""]
    scored = points[points["val_loss"].notna()]
    if scored.empty:
        return "\n".join(lines + ["No validation loss reported yet."])
    rows = []
    for lmbda, at in scored.groupby("lmbda"):
        best = at.loc[at["val_loss"].idxmin()]
        rows.append([f"{lmbda:g}", best["label"] + (" [baseline]" if best["is_baseline"] else ""), len(at),
                     f"{best['val_loss']:.4g}", f"{best['bpp']:.4f}", _number(best["psnr"], "{:.2f}"),
                     int(best["epoch"]), best["status"], f"`{best['trial_id']}`"])
    headers = ["λ", "best configuration", "of", "val_loss", "bpp", "PSNR (dB)", "epoch", "status", "trial"]
    return "\n".join(lines + [_table(headers, rows)])


def _published(claims: PublishedClaims | None, about: str, anchor: Anchor | None) -> str:
    lines = ["## Published figures (context)", "", about]
    if claims is not None:
        lines += ["", claims.about, ""]
        headers = ["model", *[f"{column} (%)" for column in claims.table.columns]]
        lines.append(_table(headers, [[name, *[f"{v:+.2f}" for v in row]] for name, row in claims.table.iterrows()]))
        lines += [""] + [f"- {note}" for note in claims.notes]
    if anchor is not None:
        span = (f"{len(anchor.bpp)} points, {anchor.bpp.min():.3g}–{anchor.bpp.max():.3g} bpp, "
                f"{anchor.psnr.min():.1f}–{anchor.psnr.max():.1f} dB")
        lines += ["", f"Anchor `{anchor.name}` ({span}): {anchor.source}."]
    return "\n".join(lines)


def _caveats(experiment: pd.DataFrame, points: pd.DataFrame, table: pd.DataFrame, anchor: Anchor | None) -> str:
    notes = []
    if experiment.attrs.get("status_source") != "results.csv":
        notes.append("No results.csv (the search is still running or was interrupted): statuses are inferred "
                     "from error.txt and Ray's done flag.")
    if not points.empty and not points["is_baseline"].any():
        notes.append("No baseline configuration (both regularizers off) has validated points, so BD-rate vs "
                     "baseline is undefined; add regularizers-off trials at the same λ values.")
    if not points.empty and table["n_lambdas"].max() < MIN_POINTS:
        notes.append(f"At most {table['n_lambdas'].max()} λ values per configuration: BD-rate needs at least "
                     f"{MIN_POINTS} RD points per curve, so every BD number is n/a (a smoke run?). Compare per λ.")
    partial = points[points["status"] != "TERMINATED"]
    if len(partial):
        notes.append(f"{len(partial)} of {len(points)} RD points come from trials that are not TERMINATED "
                     f"({', '.join(sorted(set(partial['status'])))}): their curves mix partly trained models.")
    repeated = points[points["n_trials"] > 1]
    if len(repeated):
        notes.append(f"{len(repeated)} (configuration, λ) pairs have several trials; the lowest val_loss is used.")
    silent = experiment.groupby("trial_id")["epoch"].count()
    if (silent == 0).any():
        notes.append(f"Trials with no reported epoch yet (not plotted): {int((silent == 0).sum())}.")
    for name in ("baseline", "anchor"):
        overlap = table[f"overlap_vs_{name}"]
        low = table[(overlap > 0) & (overlap < LOW_OVERLAP)]
        if len(low):
            notes.append(f"{len(low)} BD-rates vs {name} rest on less than {LOW_OVERLAP:.0%} shared quality range.")
    if anchor is not None:
        notes.append(f"`{anchor.name}` was measured on the full {anchor.name.split(':')[0]} set with fully trained "
                     "codecs; unless this experiment validates on that set after full training, BD-rate vs the "
                     "anchor shows direction only.")
        if points.attrs.get("rate") == "val_bpp":
            notes.append("val_bpp is the entropy model's estimate while published rates are real file sizes; "
                         "`--rate real_bpp` compares like with like where the final epoch measured it.")
    notes.append("Published BD-rates are vs VTM-22.0 on full test sets; they frame, not validate, these numbers.")
    return "## Caveats\n\n" + "\n".join(f"- {note}" for note in notes)


def _name(experiment: pd.DataFrame) -> str:
    path = experiment.attrs.get("path", "")
    return Path(path).name or path


def _number(value: float, template: str) -> str:
    return "n/a" if _isnan(value) else template.format(value)


def _isnan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)
