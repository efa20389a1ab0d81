"""Collapse training histories into rate-distortion points: one per configuration and lambda.

Grouping follows :mod:`analysis.groups`: every hyperparameter except lambda and bookkeeping
keys, with the settings of a regularizer that is off blanked (the hyperparameter columns of
the result hold those effective values). Per trial the point is its last validated epoch
(``select="final"``) or its lowest ``val_loss`` epoch (``"best"``). If several trials share
a group and lambda (repeats, or trials differing only in bookkeeping keys) the one with the
lowest ``val_loss`` is kept and ``n_trials`` says how many competed. Trials without a
lambda or without a validated epoch give no point.
"""

from __future__ import annotations

import pandas as pd

from . import groups
from .errors import AnalysisError

SELECTIONS = ("final", "best")
POINT_COLUMNS = (
    "group", "label", "is_baseline", "lmbda", "bpp", "quality", "psnr", "ms_ssim_db",
    "val_loss", "epoch", "trial_id", "status", "n_trials",
)


def rd_points(
    df: pd.DataFrame,
    select: str = "final",
    rate: str = "val_bpp",
    quality: str = "val_psnr",
) -> pd.DataFrame:
    """One row per (group, lambda), sorted by group then lambda.

    Columns: ``POINT_COLUMNS`` then the hyperparameter columns. ``bpp`` holds ``rate``
    (``val_bpp`` or ``real_bpp``, both bits per pixel); ``quality`` holds ``quality`` so BD
    code stays metric-agnostic, while ``psnr`` and ``ms_ssim_db`` are always the validation
    PSNR and MS-SSIM (dB), NaN when not reported. ``attrs["hparams"]`` lists the
    hyperparameter columns and ``attrs["varying"]`` those that differ between groups.
    """
    if select not in SELECTIONS:
        raise AnalysisError(f"select must be one of {', '.join(SELECTIONS)}, not {select!r}")
    config_columns = df.attrs.get("config_columns")
    if config_columns is None:
        raise AnalysisError("rd_points needs the table from load_experiment (attrs['config_columns'] is missing)")
    lambda_columns = [column for column, key in config_columns.items() if key == groups.LAMBDA_KEY]
    if not lambda_columns:
        raise AnalysisError(f"no '{groups.LAMBDA_KEY}' config key in this experiment")
    lambda_column = lambda_columns[0]
    needed = [rate, quality, *(["val_loss"] if select == "best" else [])]
    missing = [column for column in needed if column not in df.columns]
    if missing and df["epoch"].notna().any():
        raise AnalysisError(f"no '{missing[0]}' metric in this experiment")
    df = df.assign(**dict.fromkeys(missing, float("nan")))  # nothing reported yet: no points
    if rate == "real_bpp" and select == "best":
        raise AnalysisError("real_bpp is reported on the final epoch only; use select='final' with it")
    hparams = [column for column, key in config_columns.items() if groups.is_hyperparameter(key)]

    needed = [lambda_column, rate, quality, *(["val_loss"] if select == "best" else [])]
    valid = df[df[needed].apply(pd.to_numeric, errors="coerce").notna().all(axis=1)]
    if select == "best":
        chosen = valid.loc[valid.groupby("trial_dir", sort=False)["val_loss"].idxmin()]
    else:
        chosen = valid.loc[valid.groupby("trial_dir", sort=False)["epoch"].idxmax()]

    rows = [_point(row, rate, quality, lambda_column, hparams, config_columns) for _, row in chosen.iterrows()]
    points = pd.DataFrame(rows, columns=[*POINT_COLUMNS, *hparams, "_key"])
    points = _one_per_group_and_lambda(points)

    keys = sorted(set(points["_key"]), key=lambda k: (not _baseline_of(points, k), _sortable(k)))
    points["group"] = points["_key"].map({key: number for number, key in enumerate(keys)})
    varying = groups.varying_keys(points.drop_duplicates("_key").to_dict("records"), hparams)
    points["label"] = [groups.label(row, varying) for row in points.to_dict("records")]
    points = points.drop(columns="_key").sort_values(["group", "lmbda"]).reset_index(drop=True)
    points.attrs.update(hparams=hparams, varying=varying, select=select, rate=rate, quality=quality)
    return points


def _point(row: pd.Series, rate: str, quality: str, lambda_column: str,
           hparams: list[str], config_columns: dict[str, str]) -> dict:
    config = {key: groups.canonical(row[column]) for column, key in config_columns.items()}
    settings = groups.effective(config)
    return {
        "is_baseline": groups.regularizers_off(config),
        "lmbda": float(row[lambda_column]),
        "bpp": _number(row[rate]),
        "quality": _number(row[quality]),
        "psnr": _number(row.get("val_psnr")),
        "ms_ssim_db": _number(row.get("val_ms_ssim_db")),
        "val_loss": _number(row.get("val_loss")),
        "epoch": int(row["epoch"]),
        "trial_id": row["trial_id"],
        "status": row["status"],
        **{column: settings[config_columns[column]] for column in hparams},
        "_key": tuple(settings[config_columns[column]] for column in hparams),
    }


def _one_per_group_and_lambda(points: pd.DataFrame) -> pd.DataFrame:
    counts = points.groupby(["_key", "lmbda"], sort=False)["trial_id"].transform("size")
    points = points.assign(n_trials=counts)
    order = points.sort_values("val_loss", na_position="last", kind="stable")
    return order.drop_duplicates(["_key", "lmbda"], keep="first")


def _baseline_of(points: pd.DataFrame, key: tuple) -> bool:
    return bool(points.loc[points["_key"] == key, "is_baseline"].iloc[0])


def _number(value: object) -> float:
    number = pd.to_numeric(value, errors="coerce")
    return float("nan") if pd.isna(number) else float(number)


def _sortable(key: tuple) -> tuple:
    """Order group keys by value, with unset first and mixed types kept comparable."""
    return tuple((value is not None, type(value).__name__, value if value is not None else 0) for value in key)
