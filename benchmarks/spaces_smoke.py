"""Does every built-in space answer at the CPU preset? One ``cpu-smoke`` search per space, then its verdict.

    python -m benchmarks.spaces_smoke --storage DIR [--run] [--spaces S ...] [--out benchmarks/results/spaces_smoke.json]

With ``--run``, for each space: ``search.run --space S --preset cpu-smoke`` (plus the space's
extra flags in ``EXTRA``: a space that cannot run at the preset as is), ``analysis.evaluate`` and
``analysis.report`` into DIR/S, timed; without it, the experiments already in DIR are read. Per
space the JSON holds the trials by status and, per configuration, whether its mean validation and
test curves rise at every λ step, its BD-rate vs off and status from the report's own table
(``analysis.report.report_data``), the finished configurations not evaluated on the test set
(below ``analysis.evaluate``'s top K), the trials' wall seconds as Ray Tune timed them (summed), and the report's line on why a configuration has no BD-rate.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import platform
import subprocess
import sys
import time
from pathlib import Path

from analysis.budget import failing_step, trial_steps, why_no_bd_rate
from analysis.experiment import load_experiment
from analysis.points import eligible_trials, ranking, validation_points
from analysis.report import report_data
from spaces import registry

RESULTS = Path(__file__).with_name("results") / "spaces_smoke.json"
# flags a space needs beyond the preset, and why (shown in the JSON)
EXTRA = {
    "phase2_delta_ms_ssim": (["--patch-size", "192"], "MS-SSIM needs crops of >= 161 px; cpu-smoke's are 128"),
    "phase2_design": (["--searcher", "optuna", "--num-samples", "6"],
                      "its grid has 29 configurations (~1 CPU-hour): 6 drawn by Optuna, off included"),
}


def run_space(space: str, storage: Path) -> dict:
    """search → evaluate → report for one space; exit codes and wall seconds of each."""
    flags, _ = EXTRA.get(space, ([], ""))
    steps = {"search": ["search.run", "--space", space, "--preset", "cpu-smoke", "--storage-path", str(storage),
                        "--name", space, "--resume", *flags],
             "evaluate": ["analysis.evaluate", str(storage / space)],
             "report": ["analysis.report", str(storage / space)]}
    out = {}
    for name, command in steps.items():
        start = time.time()
        code = subprocess.run([sys.executable, "-m", *command], capture_output=True).returncode
        out[name] = {"exit": code, "seconds": round(time.time() - start, 1)}
        if code:
            break
    return out


def summarise(folder: Path) -> dict:
    """Trials by status and, per configuration, rising curves, BD-rate vs off, status, why no BD-rate."""
    experiment = load_experiment(folder)
    data = report_data(folder)
    validation = validation_points(experiment)
    steps_per_epoch, steps = trial_steps(eligible_trials(experiment))
    rows = []
    for row in data.table.itertuples():
        name = row.configuration
        rows.append({"configuration": name, "is_off": bool(row.is_off), "seeds": int(row.n_seeds),
                     "validation_rises": failing_step(validation, name, data.quality) is None,
                     "test_rises": failing_step(data.points, name, data.quality) is None
                     if data.source == "test" else None,
                     "bd_rate_vs_off": None if math.isnan(row.bd_rate_vs_off) else round(float(row.bd_rate_vs_off), 2),
                     "status": str(row.status),
                     "why_no_bd_rate": why_no_bd_rate(data.points, experiment.history, name, data.quality,
                                                      steps_per_epoch, steps) if data.source == "test" else None})
    statuses = experiment.trials["status"].value_counts().to_dict()
    finished = ranking(experiment)["configuration"]
    return {"source": data.source, "trials": {str(k): int(v) for k, v in statuses.items()},
            "trial_seconds": round(sum(_trial_seconds(path) for path in folder.glob("trial_*/progress.csv")), 1),
            "not_evaluated": sorted(set(finished) - set(data.table["configuration"])),
            **{key: json.loads((folder / "experiment.json").read_text()).get(key) for key in ("searcher", "scheduler")},
            "configurations": rows}


def _trial_seconds(progress: Path) -> float:
    """A trial's wall seconds as Ray Tune recorded them (the last ``time_total_s``; 0 if none)."""
    import pandas as pd

    times = pd.read_csv(progress, usecols=lambda column: column == "time_total_s")
    return float(times["time_total_s"].max()) if len(times) else 0.0


HEADER = ["space", "run", "trials", "trial seconds", "evaluated on test", "test curves rise", "BD-rate vs off defined",
          "BD-rate vs off (status)"]


def row(space: str, entry: dict) -> str:
    """One markdown row of the docs' table (tests/test_docs.py checks the docs quote these rows)."""
    configurations = entry["configurations"]
    others = [c for c in configurations if not c["is_off"]]
    run = f"{entry['searcher']}, {entry['scheduler']}" + (f"; `{' '.join(entry['extra_flags'])}`" if entry["extra_flags"] else "")
    trials = ", ".join(f"{n} {status}" for status, n in sorted(entry["trials"].items()))
    rises = sum(bool(c["test_rises"]) for c in configurations)
    defined = sum(c["bd_rate_vs_off"] is not None for c in others)
    verdicts = "; ".join(f"`{c['configuration']}` " + ("—" if c["bd_rate_vs_off"] is None
                                                         else f"{c['bd_rate_vs_off']:+.2f} %")
                         + f" ({c['status'].split(':')[0]})" for c in others) or "— (off only)"
    cells = [f"`{space}`", run, trials, f"{entry['trial_seconds']:.0f}", f"{len(others)} + off" + (f" ({len(entry['not_evaluated'])} not)"
                                                                          if entry["not_evaluated"] else ""),
             f"{rises} of {len(configurations)}", f"{defined} of {len(others)}", verdicts]
    return "| " + " | ".join(cells) + " |"


def markdown(data: dict) -> str:
    """The docs' table of every space."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    return "\n".join(lines + [row(space, entry) for space, entry in data["spaces"].items()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--storage", required=True, help="folder of the experiments (one per space)")
    parser.add_argument("--run", action="store_true", help="run the searches first (else read them)")
    parser.add_argument("--spaces", nargs="+", default=sorted(registry()))
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    storage = Path(args.storage).resolve()
    results = {}
    for space in args.spaces:
        entry = {"extra_flags": EXTRA.get(space, ([], ""))[0], "why_extra": EXTRA.get(space, ([], ""))[1]}
        if args.run:
            entry["commands"] = run_space(space, storage)
        entry.update(summarise(storage / space))
        results[space] = entry
        print(space, json.dumps({c["configuration"]: (c["bd_rate_vs_off"], c["status"]) for c in entry["configurations"]}),
              flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                               "machine": platform.platform(), "preset": "cpu-smoke", "spaces": results},
                              indent=2) + "\n")
    print(markdown(json.loads(out.read_text())))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
