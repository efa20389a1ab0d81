"""The report's figures, each registered with :func:`analysis.figures.register_figure`.

Built on ``matplotlib.figure.Figure`` without pyplot, so importing this module never
switches the backend: the report saves through Agg, a notebook displays them inline.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .figures import ReportData, register_figure
from .interval import bd_over_epochs
from .verdict import level_of
from .points import mean_curve, parse_configuration

MAX_CURVES = 10


@register_figure("rd_curves.png", "RD curves: mean over seeds and images per configuration (left), every seed (right)")
def rd_figure(data: ReportData) -> Figure:
    points, table = data.points, data.table
    figure = Figure(figsize=(13, 5.5), layout="constrained")
    mean_axes, seed_axes = figure.subplots(1, 2)
    shown = _configurations_to_show(table, data.reference)
    colours = _colours(shown, data.reference)
    bd = dict(zip(table["configuration"], zip(table["bd_rate_vs_off"], table["ci_low"], table["ci_high"])))
    for configuration in shown:
        style = _style(configuration, data.reference, colours)
        curve = mean_curve(points, configuration, data.quality)
        label = configuration + (" (reference)" if configuration == data.reference else _bd_label(*bd[configuration]))
        mean_axes.plot(curve["bpp"], curve[data.quality], label=label, linewidth=1.6, markersize=5, **style)
        rows = points[points["configuration"] == configuration]
        for seed, per_seed in rows.groupby("seed"):
            seed_curve = per_seed.groupby("lmbda")[["bpp", data.quality]].mean()
            seed_axes.plot(seed_curve["bpp"], seed_curve[data.quality], linewidth=1, markersize=3, alpha=0.7, **style)
    if data.anchor is not None and data.quality == "psnr":
        mean_axes.plot(data.anchor.bpp, data.anchor.psnr, color="grey", marker="^", label=f"{data.anchor.name} (published)")
    what = "test images (real bitstreams)" if data.source == "test" else "VALIDATION set (no test evaluation yet)"
    hidden = len(set(points["configuration"])) - len(shown)
    mean_axes.set_title(f"Mean over seeds and {what}" + (f"; {hidden} not drawn" if hidden > 0 else ""), fontsize=9)
    seed_axes.set_title("Each seed (mean over images)", fontsize=9)
    for axes in (mean_axes, seed_axes):
        axes.set_xlabel("rate (bits per pixel)")
        axes.set_ylabel("PSNR (dB)" if data.quality == "psnr" else "MS-SSIM (dB)")
        axes.grid(True, alpha=0.3)
    if not shown:
        mean_axes.text(0.5, 0.5, "no points", ha="center", transform=mean_axes.transAxes)
    handles, labels = mean_axes.get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    return figure


@register_figure("bd_rate_over_epochs.png",
                 "BD-rate vs off over training epochs, from the seed-averaged per-λ validation metrics")
def bd_over_epochs_figure(data: ReportData) -> Figure:
    figure = Figure(figsize=(8, 4.8), layout="constrained")
    axes = figure.subplots()
    per_epoch = bd_over_epochs(data.experiment, data.reference, data.method, data.quality)
    per_epoch = per_epoch[per_epoch["configuration"] != data.reference]
    stopped = set(data.experiment.trials.loc[data.experiment.trials["status"] == "STOPPED", "configuration"])
    configurations = sorted(set(per_epoch["configuration"]))
    colours = _colours(configurations, data.reference)
    for configuration in configurations:
        rows = per_epoch[per_epoch["configuration"] == configuration].sort_values("epoch")
        axes.plot(rows["epoch"], rows["bd_rate_vs_off"], marker="o", markersize=4, color=colours[configuration],
                  linestyle=":" if configuration in stopped else "-",
                  label=configuration + (" (stopped by ASHA)" if configuration in stopped else ""))
    axes.axhline(0, color="black", linewidth=0.8)
    axes.set_xlabel("epoch")
    axes.set_ylabel("BD-rate vs off (%), validation")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(True, alpha=0.3)
    if per_epoch["bd_rate_vs_off"].notna().sum() == 0:
        reasons = sorted(set(per_epoch["status"])) or ["no configuration besides off has validation metrics"]
        axes.text(0.5, 0.5, "BD-rate undefined at every epoch:\n" + textwrap.fill(reasons[0], 70), ha="center", va="center",
                  transform=axes.transAxes, fontsize=8)
    if configurations:
        axes.legend(fontsize=8)
    axes.set_title("Lower is better; seeds averaged per epoch (no interval)", fontsize=9)
    return figure


@register_figure("learning_curves.png", "Validation rd_score (mean over λ of log val_loss) per epoch, one line per trial")
def learning_figure(data: ReportData) -> Figure:
    figure = Figure(figsize=(8, 4.8), layout="constrained")
    axes = figure.subplots()
    progress = data.experiment.progress
    trials = data.experiment.trials.set_index("trial_id")
    configurations = sorted(set(trials["configuration"]))
    colours = _colours(configurations, data.reference)
    drawn = set()
    if "rd_score" in progress:
        for trial_id, rows in progress.groupby("trial_id", sort=False):
            status = trials.loc[trial_id, "status"]
            configuration = trials.loc[trial_id, "configuration"]
            axes.plot(rows["epoch"], rows["rd_score"], color=colours[configuration], marker=".", alpha=0.8,
                      linestyle="-" if status == "TERMINATED" else ":",
                      label=None if configuration in drawn else configuration)
            drawn.add(configuration)
    if not drawn:
        axes.text(0.5, 0.5, "no rd_score reported yet", ha="center", transform=axes.transAxes)
    else:
        axes.legend(fontsize=8, title="dotted: not TERMINATED", title_fontsize=8)
    axes.set_xlabel("epoch")
    axes.set_ylabel("validation rd_score (lower is better)")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(True, alpha=0.3)
    return figure


@register_figure("hparam_effects.png", "BD-rate vs off (Holm-level interval, as in the verdict table) against each "
                 "searched parameter")
def effects_figure(data: ReportData) -> Figure:
    table = data.table[~data.table["is_off"]]
    settings = {row.configuration: parse_configuration(row.configuration) for row in table.itertuples()}
    keys = list(dict.fromkeys(key for values in settings.values() for key in values))
    columns = min(3, max(len(keys), 1))
    rows = max(math.ceil(len(keys) / columns), 1)
    figure = Figure(figsize=(4.6 * columns, 3.8 * rows), layout="constrained")
    grid = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for axes in grid[len(keys):]:
        axes.set_axis_off()
    if not keys:
        grid[0].text(0.5, 0.5, "no configuration besides off", ha="center", va="center", transform=grid[0].transAxes)
        return figure
    for axes, key in zip(grid, keys):
        xs = [settings[c].get(key) for c in table["configuration"]]
        numeric = all(isinstance(x, (int, float)) for x in xs)
        categories = sorted({str(x) for x in xs})
        positions = [float(x) if numeric else categories.index(str(x)) for x in xs]
        value, low, high = (table[c].to_numpy(dtype=float) for c in ("bd_rate_vs_off", "ci_low", "ci_high"))
        errors = np.vstack([value - low, high - value])
        axes.errorbar(positions, value, yerr=np.where(np.isfinite(errors), errors, 0), fmt="o", capsize=3, color="black")
        if not numeric:
            axes.set_xticks(range(len(categories)), categories)
        axes.axhline(0, color="grey", linewidth=0.8)
        axes.set_xlabel(key)
        axes.set_ylabel("BD-rate vs off (%)")
        axes.grid(True, alpha=0.3)
    level = level_of(data.table)
    figure.suptitle("BD-rate vs off, " + (f"test set, intervals at their Holm levels (lowest {level:.1%})" if data.source == "test" else
                                         "VALIDATION set, no interval (no test evaluation yet)"))
    return figure


def _configurations_to_show(table: pd.DataFrame, reference: str) -> list[str]:
    """Off plus the lowest BD-rates, at most MAX_CURVES."""
    others = table[table["configuration"] != reference].sort_values("bd_rate_vs_off", na_position="last")
    present = [reference] if reference in set(table["configuration"]) else []
    return present + others["configuration"].tolist()[:MAX_CURVES - len(present)]


def _colours(configurations, reference: str) -> dict:
    palette = colormaps["tab10"].colors
    others = [c for c in configurations if c != reference]
    colours = {c: palette[i % len(palette)] for i, c in enumerate(others)}
    colours[reference] = "black"
    return colours


def _style(configuration: str, reference: str, colours: dict) -> dict:
    if configuration == reference:
        return dict(color="black", linestyle="--", marker="s")
    return dict(color=colours[configuration], marker="o")


def _bd_label(value: float, low: float, high: float) -> str:
    if math.isnan(value):
        return "  (BD-rate n/a)"
    if math.isnan(low):
        return f"  (BD-rate {value:+.2f} %)"
    return f"  (BD-rate {value:+.2f} % [{low:+.2f}, {high:+.2f}])"

