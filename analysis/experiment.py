"""Load one configuration-level Ray Tune experiment (``STORAGE/NAME``) into tables.

Layout read (written by ``search.run``): trial directories directly under the experiment,
each with ``params.json`` (the trial's config: TrainConfig fields plus ``configuration``,
``is_off``, ``seed``, ``lambdas``) and ``result.json`` (one JSON line per epoch, per-λ keys
``lambda=<λ>/<metric>`` plus ``epoch``, ``rd_score``, ...); ``results.csv`` (one row per
configuration × seed: status, stopped_epoch, rd_score, error, ...) and ``experiment.json``.

:class:`Experiment` holds three tables:

* ``trials``: one row per trial: ``trial_id, trial_dir`` (absolute), ``configuration,
  is_off, seed, status`` (TERMINATED | STOPPED | ERROR | RUNNING), ``epochs_run,
  stopped_epoch, rd_score, error`` and ``config/<key>`` for every params.json key.
* ``progress``: one row per trial × epoch with the scalar metrics (``rd_score``, ``tau``, ...).
* ``history``: one row per trial × epoch × λ with ``lmbda`` and that λ's metrics
  (``val_bpp``, ``val_psnr``, ``val_loss``, ...).

Status comes from results.csv when it lists the trial; otherwise (a search still running)
error.txt means ERROR, a ``done`` flag or reaching ``epochs`` TERMINATED, anything else
RUNNING, and ``status_source`` says "heuristic". An experiment a stop signal interrupted
(experiment.json's ``status``, INTERRUPTED rows of results.csv) is refused with the command
that resumes it: its unfinished trials would read as results.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import AnalysisError

CONFIG_PREFIX = "config/"
TRIAL_COLUMNS = ("trial_id", "trial_dir", "configuration", "is_off", "seed", "status", "epochs_run",
                 "stopped_epoch", "rd_score", "error")
LAMBDA_KEY = re.compile(r"^lambda=([^/]+)/(.+)$")
# Ray names trial directories <trainable>_<5 hex>_<5 digits>_...
RAY_TRIAL_ID = re.compile(r"(?:^|_)([0-9a-f]{5}_\d{5})(?=_|$)")


@dataclass(frozen=True)
class Experiment:
    """Everything the analysis reads from one experiment directory (see the module docstring)."""

    path: Path
    trials: pd.DataFrame
    progress: pd.DataFrame
    history: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)
    status_source: str = "results.csv"

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def lambdas(self) -> list[float]:
        return sorted(self.history["lmbda"].dropna().unique().tolist())


def load_experiment(path: str | os.PathLike[str]) -> Experiment:
    """Read every trial directory under ``path``."""
    root = Path(path)
    if not root.is_dir():
        raise AnalysisError(f"experiment directory not found: {root}")
    trial_dirs = sorted((d for d in root.iterdir() if (d / "params.json").is_file()), key=lambda d: d.name)
    if not trial_dirs:
        brackets = [d.name for d in root.iterdir() if d.is_dir() and d.name.startswith("lambda=")]
        hint = " (it has λ brackets: written by an older search.run, one trial per λ)" if brackets else ""
        raise AnalysisError(f"no trials in {root}: no subdirectory holds a params.json{hint}")
    summary = _read_summary(root / "results.csv")
    trials, progress, history = [], [], []
    for trial_dir in trial_dirs:
        trial, records = _read_trial(trial_dir, summary)
        trials.append(trial)
        for record in records:
            scalars, per_lambda = _split(record)
            identity = {"trial_id": trial["trial_id"], "configuration": trial["configuration"],
                        "is_off": trial["is_off"], "seed": trial["seed"], "status": trial["status"]}
            progress.append({**identity, **scalars})
            history += [{**identity, "epoch": scalars["epoch"], "lmbda": lmbda, **metrics}
                        for lmbda, metrics in sorted(per_lambda.items())]
    trial_frame = pd.DataFrame(trials)
    info = _read_json(root / "experiment.json")
    _refuse_interrupted(root, info, trial_frame)
    trial_frame = trial_frame[[*TRIAL_COLUMNS, *[c for c in trial_frame if c not in TRIAL_COLUMNS]]]
    identity = ["trial_id", "configuration", "is_off", "seed", "status", "epoch"]
    return Experiment(
        path=root,
        trials=trial_frame,
        progress=pd.DataFrame(progress, columns=None if progress else identity),
        history=pd.DataFrame(history, columns=None if history else [*identity, "lmbda"]),
        info=info,
        status_source="results.csv" if summary else "heuristic",
    )


def _refuse_interrupted(root: Path, info: dict[str, Any], trials: pd.DataFrame) -> None:
    """A search a stop signal ended is unfinished: its ranking and curves would be read as results."""
    unfinished = int((trials["status"] == "INTERRUPTED").sum())
    if info.get("status") != "interrupted" and not unfinished:
        return
    how = info.get("resume_command") or "search.run's command with --resume"
    raise AnalysisError(f"experiment {root} was interrupted ({unfinished} of {len(trials)} trials unfinished); "
                        f"finish it first: {how}")


def _read_summary(csv_path: Path) -> dict[str, dict[str, Any]]:
    """Map trial directory name to its results.csv row; empty when the search has not written it."""
    if not csv_path.is_file():
        return {}
    try:
        table = pd.read_csv(csv_path, dtype={"trial_id": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise AnalysisError(f"unreadable {csv_path}: {exc}".splitlines()[0]) from None
    missing = [column for column in ("trial_id", "trial_dir", "status") if column not in table.columns]
    if missing:
        raise AnalysisError(f"{csv_path} has no {missing[0]} column (written by an older search.run?)")
    table = table.astype(object).where(table.notna(), None)
    return {Path(str(row["trial_dir"])).name: row for row in table.to_dict("records")}


def _read_trial(trial_dir: Path, summary: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], list[dict]]:
    config = _read_json(trial_dir / "params.json", required=True)
    for key in ("configuration", "is_off"):
        if key not in config:
            raise AnalysisError(f"{trial_dir / 'params.json'} has no '{key}': not a configuration-level trial "
                                "(written by an older search.run, one trial per λ?)")
    records = _read_results(trial_dir / "result.json")
    row = summary.get(trial_dir.name, {})
    error_file = trial_dir / "error.txt"
    error = _first_line(error_file.read_text(errors="replace")) if error_file.is_file() else None
    if row.get("status"):
        status = str(row["status"])
        error = _first_line(str(row["error"])) if row.get("error") else error
    elif error is not None:
        status = "ERROR"
    elif records and (any(r.get("done") is True for r in records) or records[-1]["epoch"] >= (config.get("epochs") or math.inf)):
        status = "TERMINATED"
    else:
        status = "RUNNING"
    last = records[-1] if records else {}
    trial = {
        "trial_id": str(row.get("trial_id") or _trial_id(trial_dir.name, records)),
        "trial_dir": str(trial_dir.resolve()),
        "configuration": str(config["configuration"]),
        "is_off": bool(config["is_off"]),
        "seed": int(config.get("seed", 0)),
        "status": status,
        "epochs_run": int(last.get("epoch", 0)),
        "stopped_epoch": _number(row.get("stopped_epoch")) if row else (
            float(last["epoch"]) if status == "STOPPED" else math.nan),
        "rd_score": _number(row["rd_score"]) if row.get("rd_score") is not None else _number(last.get("rd_score")),
        "error": error,
        **{CONFIG_PREFIX + key: _hashable(value) for key, value in config.items()},
    }
    if status == "STOPPED" and math.isnan(trial["stopped_epoch"]):
        trial["stopped_epoch"] = float(trial["epochs_run"])
    return trial, records


def _read_json(path: Path, required: bool = False) -> dict[str, Any]:
    if not path.is_file():
        if required:
            raise AnalysisError(f"not found: {path}")
        return {}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnalysisError(f"unreadable {path}: {exc}") from None
    if not isinstance(data, dict):
        raise AnalysisError(f"{path} must hold a JSON object, not {type(data).__name__}")
    return data


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


def _split(record: dict[str, Any]) -> tuple[dict[str, Any], dict[float, dict[str, Any]]]:
    """A result.json line → (scalar metrics, {λ: that λ's metrics})."""
    scalars: dict[str, Any] = {}
    per_lambda: dict[float, dict[str, Any]] = {}
    for key, value in record.items():
        match = LAMBDA_KEY.match(key)
        if match is None:
            scalars[key] = value
            continue
        try:
            lmbda = float(match.group(1))
        except ValueError:
            raise AnalysisError(f"metric key {key!r} does not name a number after 'lambda='") from None
        per_lambda.setdefault(lmbda, {})[match.group(2)] = value
    return scalars, per_lambda


def _trial_id(dir_name: str, records: list[dict[str, Any]]) -> str:
    """The id Ray reported, else one embedded in the directory name, else the name itself."""
    for record in reversed(records):
        if record.get("trial_id"):
            return str(record["trial_id"])
    ray_style = RAY_TRIAL_ID.search(dir_name)
    return ray_style.group(1) if ray_style else dir_name


def _hashable(value: Any) -> Any:
    """Lists and dicts become canonical JSON so trials can be grouped on them."""
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    return value


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "error (no message)"


def _number(value: object) -> float:
    number = pd.to_numeric(value, errors="coerce")
    return math.nan if pd.isna(number) else float(number)
