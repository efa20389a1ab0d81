"""Which trials count, how configurations rank, and their rate-distortion points.

Rules (the same for ``analysis.evaluate`` and ``analysis.report``):

* Only TERMINATED trials give points. A configuration with any trial that ASHA STOPPED is
  out altogether (the scheduler judged the configuration; keeping its surviving seeds
  would keep only its lucky ones). ERROR trials are dropped (a crash is not a judgement);
  ``n_seeds`` shows what is left.
* Configurations rank by the mean over their TERMINATED seeds of the last epoch's
  validation ``rd_score`` (lower is better). "off" is always evaluated, whatever its rank.

A points table has one row per configuration × seed × λ × image: ``configuration, is_off,
seed, lmbda, image, bpp, psnr, ms_ssim_db, trial_id`` (validation points have a single
image, ``"val (mean)"``, and an ``epoch`` column).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from .errors import AnalysisError
from .experiment import Experiment

POINT_COLUMNS = ("configuration", "is_off", "seed", "lmbda", "image", "bpp", "psnr", "ms_ssim_db", "trial_id")
VALIDATION_IMAGE = "val (mean)"
OFF = "off"


def stopped_configurations(experiment: Experiment) -> pd.DataFrame:
    """Configurations with a trial ASHA stopped: configuration, seeds, stopped_epoch (earliest)."""
    trials = experiment.trials
    stopped = trials[trials["status"] == "STOPPED"]
    if stopped.empty:
        return pd.DataFrame(columns=["configuration", "seeds", "stopped_epoch", "rd_score"])
    return (stopped.groupby("configuration", sort=True)
            .agg(seeds=("seed", lambda s: " ".join(str(v) for v in sorted(s))),
                 stopped_epoch=("stopped_epoch", "min"), rd_score=("rd_score", "mean"))
            .reset_index())


def eligible_trials(experiment: Experiment) -> pd.DataFrame:
    """TERMINATED trials of configurations that ASHA never stopped."""
    trials = experiment.trials
    stopped = set(trials.loc[trials["status"] == "STOPPED", "configuration"])
    return trials[(trials["status"] == "TERMINATED") & ~trials["configuration"].isin(stopped)]


def ranking(experiment: Experiment) -> pd.DataFrame:
    """Eligible configurations by mean validation rd_score: configuration, is_off, n_seeds, rd_score, rank."""
    trials = eligible_trials(experiment)
    table = (trials.groupby("configuration", sort=False)
             .agg(is_off=("is_off", "first"), n_seeds=("seed", "nunique"), rd_score=("rd_score", "mean"))
             .reset_index())
    table = table.sort_values(["rd_score", "configuration"], na_position="last", kind="stable").reset_index(drop=True)
    table["rank"] = range(1, len(table) + 1)
    return table


def select_configurations(experiment: Experiment, top: int) -> list[str]:
    """Off plus the ``top`` best other configurations, off first."""
    if top < 0:
        raise AnalysisError(f"--top must be >= 0, got {top}")
    table = ranking(experiment)
    off = table.loc[table["is_off"], "configuration"].tolist()
    if not off:
        raise AnalysisError("the regularizers-off configuration has no TERMINATED trial: nothing to compare with")
    others = table.loc[~table["is_off"], "configuration"].tolist()[:top]
    return off[:1] + others


def validation_points(experiment: Experiment, trials: pd.DataFrame | None = None,
                      epoch: int | None = None) -> pd.DataFrame:
    """Per-λ validation metrics (one "image": the val mean) of ``trials`` (default: the eligible
    ones) at ``epoch`` (default: each trial's last epoch)."""
    trials = eligible_trials(experiment) if trials is None else trials
    history = experiment.history
    history = history[history["trial_id"].isin(trials["trial_id"])]
    if epoch is None:
        history = history[history["epoch"] == history.groupby("trial_id")["epoch"].transform("max")]
    else:
        history = history[history["epoch"] == epoch]
    if history.empty:
        return pd.DataFrame(columns=[*POINT_COLUMNS, "epoch"])
    return pd.DataFrame({
        "configuration": history["configuration"], "is_off": history["is_off"].astype(bool),
        "seed": history["seed"], "lmbda": history["lmbda"], "image": VALIDATION_IMAGE,
        "bpp": _column(history, "val_bpp"), "psnr": _column(history, "val_psnr"),
        "ms_ssim_db": _column(history, "val_ms_ssim_db"), "trial_id": history["trial_id"], "epoch": history["epoch"],
    }).reset_index(drop=True)


def evaluation_file(experiment_dir: str | Path) -> Path:
    return Path(experiment_dir) / "evaluation" / "points.csv"


def evaluation_points(experiment_dir: str | Path) -> pd.DataFrame | None:
    """``EXP/evaluation/points.csv`` (written by ``analysis.evaluate``), or None when absent."""
    path = evaluation_file(experiment_dir)
    if not path.is_file():
        return None
    try:
        points = pd.read_csv(path, dtype={"trial_id": str, "configuration": str, "image": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise AnalysisError(f"unreadable {path}: {exc}".splitlines()[0]) from None
    missing = [column for column in POINT_COLUMNS if column not in points.columns]
    if missing:
        raise AnalysisError(f"{path} has no '{missing[0]}' column")
    return points.astype({"is_off": bool})


def mean_curve(points: pd.DataFrame, configuration: str, quality: str = "psnr") -> pd.DataFrame:
    """One configuration's curve: per λ the mean over seeds and images of bpp and ``quality``."""
    rows = points[points["configuration"] == configuration]
    return rows.groupby("lmbda", sort=True)[["bpp", quality]].mean().reset_index()


def parse_configuration(configuration: str) -> dict[str, object]:
    """"delta=0.05,distance=l1" → {"delta": 0.05, "distance": "l1"}; "off" → {}."""
    if configuration == OFF:
        return {}
    settings: dict[str, object] = {}
    for part in configuration.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            return {"configuration": configuration}   # not key=value: one category
        try:
            number = float(value)
            settings[key.strip()] = int(number) if number.is_integer() and "." not in value else number
        except ValueError:
            settings[key.strip()] = value.strip()
    return settings


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    return pd.to_numeric(frame[name], errors="coerce") if name in frame else pd.Series(math.nan, index=frame.index)
