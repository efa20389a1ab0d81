"""Experiment summary: ``results.csv`` (one row per configuration × seed) and a ranking."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

# STOPPED: by ASHA, before max_epochs; INTERRUPTED: unfinished when a stop signal ended the search
STATUSES = ("TERMINATED", "STOPPED", "ERROR", "INTERRUPTED")


def trial_rows(result_grid, max_epochs: int, interrupted: bool = False) -> list[dict]:
    """One row per trial. After an interruption, a trial short of ``max_epochs`` whose last result
    Tune did not mark ``done`` (it does when the scheduler stops a trial) is INTERRUPTED, not STOPPED."""
    rows = []
    for r in result_grid:
        config = r.config or {}
        history = r.metrics_dataframe if r.metrics_dataframe is not None else pd.DataFrame()
        last = r.metrics or {}
        epochs_run = int(history["epoch"].max()) if "epoch" in history and history["epoch"].notna().any() else 0
        status = "ERROR" if r.error else "TERMINATED" if epochs_run >= max_epochs else \
            "INTERRUPTED" if interrupted and not last.get("done") else "STOPPED"
        row = {"trial_id": last.get("trial_id") or Path(r.path).name, "trial_dir": r.path,
               "configuration": config.get("configuration"), "is_off": bool(config.get("is_off")),
               "seed": config.get("seed"), "status": status, "epochs_run": epochs_run,
               "stopped_epoch": epochs_run if status == "STOPPED" else math.nan,
               "rd_score": last.get("rd_score", math.nan), "bd_rate_vs_off": last.get("bd_rate_vs_off", math.nan),
               "error": str(r.error).strip().splitlines()[-1][:300] if r.error else "",
               "node_id": last.get("node_id")}
        row.update({k: v for k, v in last.items() if k.startswith("lambda=")})
        row.update({f"config/{k}": v for k, v in config.items() if k not in ("configuration", "is_off")})
        rows.append(row)
    return rows


def ranking(table: pd.DataFrame) -> pd.DataFrame:
    """Finished configurations by mean rd_score over seeds (lower is better), off marked."""
    done = table[table["status"] == "TERMINATED"]
    if done.empty:
        return done
    out = done.groupby("configuration").agg(is_off=("is_off", "first"), seeds=("seed", "nunique"),
                                            rd_score=("rd_score", "mean"), bd_rate_vs_off=("bd_rate_vs_off", "mean"))
    return out.sort_values("rd_score").reset_index()
