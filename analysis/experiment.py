"""Load a Ray Tune experiment directory into one table: a row per trial per reported epoch.

Columns, in order:

* ``trial_id``, ``trial_dir`` (the directory name), ``status`` (TERMINATED / ERROR /
  RUNNING / PENDING), ``error`` (first line of the error, else None), ``epoch`` (Int64).
* one column per config key, under its plain name (``lmbda``, ``delta``, ...); a key that
  clashes with a metric or one of the columns above is stored as ``config/<key>``.
  ``df.attrs["config_columns"]`` maps each config column to its key. Lists and dicts are
  stored as canonical JSON strings so they can be grouped on.
* every key of result.json except Ray's nested ``config`` (``val_bpp``, ``val_psnr``, ...).

A trial with params.json but no reported epoch yet gets one row with NaN metrics, so a
running experiment loads. Status comes from results.csv when it lists the trial; otherwise
error.txt means ERROR, a ``done`` flag or reaching ``epochs`` means TERMINATED, anything
else RUNNING (``df.attrs["status_source"]`` says which rule applied overall).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import AnalysisError

IDENTITY_COLUMNS = ("trial_id", "trial_dir", "status", "error", "epoch")
CONFIG_PREFIX = "config/"
# Ray names trial directories <trainable>_<5 hex>_<5 digits>_<index>_<params>_<date>.
RAY_TRIAL_ID = re.compile(r"(?:^|_)([0-9a-f]{5}_\d{5})(?=_|$)")


@dataclass(frozen=True)
class _Trial:
    dir_name: str
    trial_id: str
    status: str
    error: str | None
    config: dict[str, Any]
    records: list[dict[str, Any]]


def load_experiment(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read every trial directory under ``path`` (see the module docstring for columns)."""
    root = Path(path)
    if not root.is_dir():
        raise AnalysisError(f"experiment directory not found: {root}")
    # Trials sit directly under the experiment, or one level down in search.run's λ brackets.
    candidates = [d for d in root.iterdir() if d.is_dir()]
    candidates += [c for d in candidates if not (d / "params.json").is_file() for c in d.iterdir() if c.is_dir()]
    trial_dirs = sorted((d for d in candidates if (d / "params.json").is_file()), key=lambda d: d.name)
    if not trial_dirs:
        raise AnalysisError(f"no trials in {root}: no subdirectory (or λ bracket) holds a params.json")
    summary = _read_summary(root / "results.csv")
    trials = [_read_trial(d, summary) for d in trial_dirs]
    frame = _to_frame(trials)
    frame.attrs["path"] = str(root)
    frame.attrs["status_source"] = "results.csv" if summary else "heuristic"
    return frame


def _read_summary(csv_path: Path) -> dict[str, dict[str, Any]]:
    """Map trial_id to its results.csv row; empty when the search has not written it yet."""
    if not csv_path.is_file():
        return {}
    try:
        table = pd.read_csv(csv_path, dtype={"trial_id": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise AnalysisError(f"unreadable {csv_path}: {exc}".splitlines()[0]) from None
    if "trial_id" not in table.columns:
        raise AnalysisError(f"{csv_path} has no trial_id column")
    table = table.astype(object).where(table.notna(), None)
    return {str(row["trial_id"]): row for row in table.to_dict("records")}


def _read_trial(trial_dir: Path, summary: dict[str, dict[str, Any]]) -> _Trial:
    config = _read_params(trial_dir / "params.json")
    records = _read_results(trial_dir / "result.json")
    trial_id = _trial_id(trial_dir.name, records, summary)
    error_file = trial_dir / "error.txt"
    error = _first_line(error_file.read_text(errors="replace")) if error_file.is_file() else None
    row = summary.get(trial_id)
    if row is not None and row.get("status"):
        status = str(row["status"])
        error = _first_line(str(row["error"])) if row.get("error") else error
    elif error is not None:
        status = "ERROR"
    elif _finished(records, config):
        status = "TERMINATED"
    else:
        status = "RUNNING"
    return _Trial(trial_dir.name, trial_id, status, error, config, records)


def _read_params(params_path: Path) -> dict[str, Any]:
    try:
        config = json.loads(params_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnalysisError(f"unreadable {params_path}: {exc}") from None
    if not isinstance(config, dict):
        raise AnalysisError(f"{params_path} must hold a JSON object, not {type(config).__name__}")
    return {key: _hashable(value) for key, value in config.items()}


def _hashable(value: Any) -> Any:
    """Lists and dicts become canonical JSON so trials can be grouped on them."""
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    return value


def _read_results(result_path: Path) -> list[dict[str, Any]]:
    """One dict per epoch (last report wins after a restore); a torn final line is skipped."""
    if not result_path.is_file():
        return []
    lines = [line for line in result_path.read_text(errors="replace").splitlines() if line.strip()]
    by_epoch: dict[int, dict[str, Any]] = {}
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break  # still being written by a running trial
            raise AnalysisError(f"{result_path} line {number} is not JSON") from None
        if not isinstance(record, dict):
            raise AnalysisError(f"{result_path} line {number} is not a JSON object")
        record.pop("config", None)
        epoch = record.get("epoch", record.get("training_iteration"))
        if not isinstance(epoch, (int, float)) or isinstance(epoch, bool) or epoch != int(epoch):
            raise AnalysisError(f"{result_path} line {number} has no whole-number epoch or training_iteration")
        record["epoch"] = int(epoch)
        by_epoch[record["epoch"]] = record
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def _trial_id(dir_name: str, records: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    """The id Ray reported, else one embedded in the directory name, else the name itself."""
    for record in reversed(records):
        if record.get("trial_id"):
            return str(record["trial_id"])
    matches = [trial_id for trial_id in summary if trial_id in dir_name]
    if matches:
        return max(matches, key=len)
    ray_style = RAY_TRIAL_ID.search(dir_name)
    return ray_style.group(1) if ray_style else dir_name


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "error (no message)"


def _finished(records: list[dict[str, Any]], config: dict[str, Any]) -> bool:
    if not records:
        return False
    if any(record.get("done") is True for record in records):
        return True
    planned = config.get("epochs")
    return isinstance(planned, int) and records[-1]["epoch"] >= planned


def _to_frame(trials: list[_Trial]) -> pd.DataFrame:
    metric_keys: dict[str, None] = {}
    for trial in trials:
        for record in trial.records:
            metric_keys.update(dict.fromkeys(record))
    taken = set(metric_keys) | set(IDENTITY_COLUMNS)
    config_keys: dict[str, None] = {}
    for trial in trials:
        config_keys.update(dict.fromkeys(trial.config))
    config_columns = {(CONFIG_PREFIX + key if key in taken else key): key for key in config_keys}
    metric_columns = [key for key in metric_keys if key not in IDENTITY_COLUMNS]

    rows = []
    for trial in trials:
        identity = {
            "trial_id": trial.trial_id,
            "trial_dir": trial.dir_name,
            "status": trial.status,
            "error": trial.error,
        }
        config = {column: trial.config.get(key) for column, key in config_columns.items()}
        for record in trial.records or [{"epoch": None}]:
            metrics = {key: record.get(key) for key in metric_columns}
            rows.append({**identity, "epoch": record["epoch"], **config, **metrics})

    frame = pd.DataFrame(rows, columns=[*IDENTITY_COLUMNS, *config_columns, *metric_columns])
    frame["epoch"] = frame["epoch"].astype("Int64")
    frame.attrs["config_columns"] = config_columns
    return frame
