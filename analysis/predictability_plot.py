"""Report figure: which kind of inter-scale predictability a configuration changed.

Per adjacent scale pair, the validation measure's three predictors at each trial's last epoch
(mean over λ and seeds) per configuration: ``cross`` (one linear map shared by all images,
``val_inter_scale_r2_<pair>``), ``within`` (one linear map per image) and ``neighbourhood`` (a
nonlinear map of the 3 x 3 neighbourhood). A repel term that lowers ``cross`` but not the other
two moved the shared structure into a form the entropy model may still use.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .figures import ReportData, register_figure
from .points import eligible_trials

KINDS = {"cross": "r2", "within": "within", "neighbourhood": "neighbourhood"}


def kind_means(data: ReportData) -> dict[str, pd.DataFrame]:
    """Per pair, a table configuration x kind of last-epoch means (NaN where a kind was not logged)."""
    history = data.experiment.history
    pairs = sorted(c.removeprefix("val_inter_scale_r2_") for c in history if c.startswith("val_inter_scale_r2_"))
    trials = eligible_trials(data.experiment)
    if not pairs or trials.empty:
        return {}
    history = history[history["trial_id"].isin(trials["trial_id"])]
    last = history[history["epoch"] == history.groupby("trial_id")["epoch"].transform("max")]
    out = {}
    for pair in pairs:
        columns = {kind: f"val_inter_scale_{key}_{pair}" for kind, key in KINDS.items()}
        table = last.reindex(columns=["configuration", *columns.values()]).groupby("configuration").mean()
        out[pair] = table.rename(columns={v: k for k, v in columns.items()})
    return out


@register_figure("inter_scale_kinds.png", "Inter-scale R² by kind of predictor (validation, last epoch, mean over λ "
                 "and seeds), per configuration: cross-image linear, within-image linear, 3 × 3 neighbourhood "
                 "nonlinear; the latents read are each model's declared ones (HPCM: new positions, DHIC: ŷ)")
def kinds_figure(data: ReportData) -> Figure:
    tables = kind_means(data)
    figure = Figure(figsize=(5 + 3 * max(len(tables), 1), 4.5), layout="constrained")
    if not tables:
        figure.text(0.5, 0.5, "no val_inter_scale_* metrics", ha="center")
        return figure
    for axes, (pair, table) in zip(np.atleast_1d(figure.subplots(1, len(tables))), tables.items()):
        positions = np.arange(len(table))
        for k, kind in enumerate(KINDS):
            axes.bar(positions + (k - 1) * 0.27, table[kind].to_numpy(dtype=float), width=0.27, label=kind)
        axes.set_xticks(positions, table.index, rotation=30, ha="right")
        axes.axhline(0, color="black", linewidth=0.6)
        axes.set_title(pair)
        axes.set_ylabel("held-out R²")
    figure.legend(*axes.get_legend_handles_labels(), loc="outside upper center", ncols=len(KINDS))   # off the bars
    return figure
