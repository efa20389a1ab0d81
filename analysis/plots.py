"""Figures for the report and the notebooks.

Built on ``matplotlib.figure.Figure`` without pyplot, so importing this module never
switches the backend: the report saves through Agg, a notebook displays them inline.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from .anchors import Anchor

MAX_CURVES = 10


def rd_figure(points: pd.DataFrame, table: pd.DataFrame | None = None, anchor: Anchor | None = None,
              max_curves: int = MAX_CURVES) -> Figure:
    """Rate vs quality per configuration: zoomed on the experiment, and beside the anchor.

    With more than ``max_curves`` groups, the baselines and the lowest BD-rates are drawn.
    """
    quality = points.attrs.get("quality", "val_psnr")
    figure = Figure(figsize=(13, 5.5), layout="constrained")
    zoom, wide = figure.subplots(1, 2)
    shown = _groups_to_show(points, table, max_curves)
    bd = {} if table is None else dict(zip(table["group"], table["bd_rate_vs_baseline"]))
    colours = colormaps["tab10"].colors
    for index, group in enumerate(shown):
        curve = points[points["group"] == group].sort_values("bpp")
        first = curve.iloc[0]
        name = first["label"] + (" [baseline]" if first["is_baseline"] else "")
        if not math.isnan(bd.get(group, math.nan)) and not first["is_baseline"]:
            name += f"  (BD-rate {bd[group]:+.2f} %)"
        style = dict(color="black", linestyle="--", marker="s") if first["is_baseline"] else \
            dict(color=colours[index % len(colours)], marker="o")
        for axes in (zoom, wide):
            axes.plot(curve["bpp"], curve["quality"], label=name, linewidth=1.6, markersize=5, **style)
    if anchor is not None and quality == "val_psnr":
        wide.plot(anchor.bpp, anchor.psnr, color="grey", marker="^", linewidth=1.2, label=f"{anchor.name} (published)")
    hidden = points["group"].nunique() - len(shown)
    zoom.set_title("Configurations" + (f" ({hidden} more not drawn)" if hidden else ""))
    wide.set_title(f"Against {anchor.name}" if anchor is not None else "All points, log rate")
    wide.set_xscale("log")
    for axes in (zoom, wide):
        axes.set_xlabel(f"rate ({points.attrs.get('rate', 'val_bpp')}, bits per pixel)")
        axes.set_ylabel(_quality_label(quality))
        axes.grid(True, alpha=0.3)
    if not shown:
        zoom.text(0.5, 0.5, "no validated epoch yet", ha="center", transform=zoom.transAxes)
    handles, labels = wide.get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    return figure


def effects_figure(table: pd.DataFrame, points: pd.DataFrame) -> Figure:
    """Each varying hyperparameter against BD-rate vs baseline.

    When no BD-rate is defined (e.g. fewer than 4 lambdas) it shows validation loss per
    lambda instead, and says so in the title.
    """
    varying = [key for key in points.attrs.get("varying", []) if key in table.columns]
    columns = min(3, max(len(varying), 1))
    rows = max(math.ceil(len(varying) / columns), 1)
    figure = Figure(figsize=(4.6 * columns, 3.8 * rows), layout="constrained")
    axes_grid = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for axes in axes_grid[len(varying):]:
        axes.set_axis_off()
    if not varying:
        axes_grid[0].text(0.5, 0.5, "no hyperparameter varies between configurations",
                          ha="center", va="center", transform=axes_grid[0].transAxes)
        return figure
    use_bd = table["bd_rate_vs_baseline"].notna().any()
    figure.suptitle("BD-rate vs baseline (lower is better)" if use_bd else
                    "BD-rate undefined for every configuration: validation loss per lambda instead (lower is better)")
    for axes, key in zip(axes_grid, varying):
        if use_bd:
            _scatter(axes, table[key], table["bd_rate_vs_baseline"], "black", None)
            axes.axhline(0, color="grey", linewidth=0.8)
            axes.set_ylabel("BD-rate vs baseline (%)")
        else:
            lambdas = sorted(points["lmbda"].unique())
            for lmbda, colour in zip(lambdas, _lambda_colours(lambdas)):
                at = points[points["lmbda"] == lmbda]
                _scatter(axes, at[key], at["val_loss"], colour, f"λ={lmbda:g}")
            axes.set_ylabel("val_loss")
            axes.legend(fontsize=7)
        axes.set_xlabel(key)
        axes.grid(True, alpha=0.3)
    return figure


def learning_figure(df: pd.DataFrame) -> Figure:
    """Validation loss and PSNR per epoch, one line per trial, coloured by lambda."""
    figure = Figure(figsize=(12, 4.5), layout="constrained")
    panels = figure.subplots(1, 2)
    history = df[df["epoch"].notna()]
    lambdas = sorted(history["lmbda"].dropna().unique()) if "lmbda" in history else []
    colour_of = dict(zip(lambdas, _lambda_colours(lambdas)))
    for axes, metric in zip(panels, ("val_loss", "val_psnr")):
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel(metric)
        axes.grid(True, alpha=0.3)
        if metric not in history or history[metric].notna().sum() == 0:
            axes.text(0.5, 0.5, f"no {metric} reported yet", ha="center", transform=axes.transAxes)
            continue
        for _, trial in history.groupby("trial_id", sort=False):
            style = "-" if trial["status"].iloc[0] == "TERMINATED" else ":"
            colour = colour_of.get(trial["lmbda"].iloc[0], "grey") if "lmbda" in trial else "grey"
            axes.plot(trial["epoch"].astype(float), trial[metric], style, color=colour, marker=".", alpha=0.8)
        if metric == "val_loss":
            axes.set_yscale("log")
    handles = [Line2D([], [], color=colour, label=f"λ={lmbda:g}") for lmbda, colour in colour_of.items()]
    handles.append(Line2D([], [], color="grey", linestyle=":", label="not TERMINATED"))
    figure.legend(handles=handles, loc="outside right center", fontsize=8, frameon=False)
    return figure


def _groups_to_show(points: pd.DataFrame, table: pd.DataFrame | None, limit: int) -> list[int]:
    ordered = list(points["group"].unique())
    if len(ordered) <= limit or table is None:
        return ordered[:limit]
    ranked = table.sort_values(["is_baseline", "bd_rate_vs_baseline"], ascending=[False, True], na_position="last")
    return list(ranked["group"])[:limit]


def _scatter(axes, xs: pd.Series, ys: pd.Series, colour, label: str | None) -> None:
    """Numeric values on a numeric axis, anything else (or a mix) as categories."""
    keep = xs.notna() & ys.notna()
    xs, ys = xs[keep], ys[keep]
    numeric = all(isinstance(x, (int, float, np.number)) and not isinstance(x, (bool, np.bool_)) for x in xs)
    if numeric:
        axes.scatter(xs.astype(float), ys, color=colour, label=label, s=28)
        return
    categories = sorted({str(x) for x in xs})
    positions = [categories.index(str(x)) for x in xs]
    axes.scatter(positions, ys, color=colour, label=label, s=28)
    axes.set_xticks(range(len(categories)), categories)
    axes.set_xlim(-0.5, len(categories) - 0.5)


def _lambda_colours(lambdas: list[float]) -> list:
    palette = colormaps["viridis"]
    if len(lambdas) < 2:
        return [palette(0.4)] * len(lambdas)
    return [palette(0.9 * index / (len(lambdas) - 1)) for index in range(len(lambdas))]


def _quality_label(quality: str) -> str:
    return {"val_psnr": "PSNR (dB)", "val_ms_ssim_db": "MS-SSIM (dB)"}.get(quality, quality)
