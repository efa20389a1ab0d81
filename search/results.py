"""Experiment summary: ``results.csv`` (one row per trial) and the best configuration per λ."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

SUMMARY_METRICS = ("val_loss", "val_bpp", "val_psnr", "val_ms_ssim_db", "real_bpp", "train_loss", "inter_scale_reg")


def trial_rows(result_grid, lmbda: float) -> list[dict]:
    rows = []
    for r in result_grid:
        history = r.metrics_dataframe if r.metrics_dataframe is not None else pd.DataFrame()
        last = r.metrics or {}
        row = {"trial_id": last.get("trial_id") or Path(r.path).name, "lmbda": lmbda,
               "status": "ERROR" if r.error else "TERMINATED",
               "error": str(r.error).strip().splitlines()[-1][:300] if r.error else "",
               "epochs_run": int(history["epoch"].max()) if "epoch" in history else 0,
               "trial_dir": r.path}
        row.update({f"config/{k}": v for k, v in (r.config or {}).items()})
        for key in SUMMARY_METRICS:
            row[f"final_{key}"] = last.get(key, math.nan)
        if "val_loss" in history and history["val_loss"].notna().any():
            best = history.loc[history["val_loss"].idxmin()]
            row["best_epoch"] = int(best["epoch"])
            for key in SUMMARY_METRICS:
                row[f"best_{key}"] = best.get(key, math.nan)
        rows.append(row)
    return rows


def best_per_lambda(table: pd.DataFrame, searched: list[str]) -> pd.DataFrame:
    ok = table[table["status"] != "ERROR"].dropna(subset=["best_val_loss"])
    if ok.empty:
        return ok
    best = ok.loc[ok.groupby("lmbda")["best_val_loss"].idxmin()]
    cols = ["lmbda", *[f"config/{k}" for k in searched if f"config/{k}" in best], "best_epoch", "epochs_run",
            "best_val_loss", "best_val_bpp", "best_val_psnr"]
    return best[cols].rename(columns=lambda c: c.replace("config/", "")).reset_index(drop=True)
