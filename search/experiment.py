"""Run (or resume) one experiment: one Tuner at STORAGE/NAME, then experiment.json and results.csv.

A trial is one configuration × seed trained at every λ (``trainable.tune``); the searcher
hands out configurations (``searchers``), the scheduler is FIFO or configuration-level
ASHA on ``rd_score`` whose grace covers the longest Phase 1 (``plan.grace``).
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pandas as pd
import ray
from ray import tune
from ray.tune.schedulers import FIFOScheduler

from trainable.errors import InputError
from trainable.tune import tune_trainable

from .cluster import cluster_max_concurrent
from .interrupt import StopSignals, exit_status
from .plan import Plan, is_uri
from .points import OffComparison
from .results import ranking, trial_rows
from .schedulers import PersistentASHA
from .searchers import EnumeratedSearch, FidelityAwareOptunaSearch
from .storage import read_bytes, write_bytes

EXPERIMENT_FILE, RESULTS_FILE = "experiment.json", "results.csv"
# experiment.json keys a resumed run may change: where and how the driver runs, not what is trained
RESUMABLE_CHANGES = ("resume", "address", "dashboard_host", "storage_path", "status", "resume_command")


def start_ray(plan: Plan) -> None:
    """Connect to ``--address`` or start a local Ray (dashboard on 127.0.0.1, token auth on)."""
    config = plan.config
    # One checkpoint is kept per trial, so Tune snapshots the experiment every epoch; cheap on
    # local storage: silence the warning about it.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    env = {}
    if config.wandb:   # Ray's W&B key check (driver) and its logging actors (workers) both read it
        os.environ["WANDB_MODE"] = wandb_mode(plan)
        env["WANDB_MODE"] = os.environ["WANDB_MODE"]
    if ray.is_initialized():
        return
    runtime_env = {"env_vars": env} if env else None
    if config.address:
        ray.init(address=config.address, runtime_env=runtime_env, log_to_driver=False)
        print(f"connected to Ray cluster at {config.address}")
        return
    context = ray.init(address="local", include_dashboard=True, dashboard_host=config.dashboard_host,
                       num_cpus=os.cpu_count(), configure_logging=True, log_to_driver=False,
                       runtime_env=runtime_env)
    url = getattr(context, "dashboard_url", None)
    if url:
        print(f"Ray dashboard: http://{url}  (bound to {config.dashboard_host}; token: `ray get-auth-token`)")


def check_resources(plan: Plan) -> None:
    """A trial must fit on one live node of the cluster, or Tune waits for it forever."""
    config = plan.config
    need = {"CPU": config.cpus_per_trial, "GPU": config.gpus_per_trial, **config.trial_resources}
    need = {k: v for k, v in need.items() if v > 0}
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(all(node.get(k, 0) >= v for k, v in need.items()) for node in nodes):
        return
    largest = {k: max((node.get(k, 0) for node in nodes), default=0) for k in need}
    short = ", ".join(f"{k} {need[k]:g} (largest node: {largest[k]:g})" for k in need if largest[k] < need[k]) \
        or ", ".join(f"{k} {v:g}" for k, v in need.items()) + " together"
    raise InputError(f"no node of the Ray cluster can run a trial, which asks for {short}; "
                     "lower --gpus-per-trial / --cpus-per-trial / --trial-resources or add such a node")


def changed_settings(before: dict, now: dict) -> list[str]:
    """Settings of experiment.json that differ (keys both records have, but RESUMABLE_CHANGES)."""
    return [f"{k} {before[k]!r} -> {now[k]!r}" for k in before
            if k in now and k not in RESUMABLE_CHANGES and before[k] != now[k]]


def wandb_mode(plan: Plan) -> str:
    """Offline unless asked."""
    return plan.config.wandb_mode or os.environ.get("WANDB_MODE") or "offline"


def _callbacks(plan: Plan) -> list:
    if not plan.config.wandb:
        return []
    from ray.air.integrations.wandb import WandbLoggerCallback

    return [WandbLoggerCallback(project=plan.config.wandb_project, upload_timeout=30, log_config=True,
                                mode=wandb_mode(plan), excludes=["train_dataset", "test_dataset"])]


def build_searcher(plan: Plan):
    if plan.searcher == "grid":
        return EnumeratedSearch(plan)
    return FidelityAwareOptunaSearch(plan, sampler="tpe" if plan.searcher == "optuna" else "random")


def _asha_state(plan: Plan) -> Path:
    """PersistentASHA's rung records: driver state, next to the experiment when storage is local."""
    if is_uri(plan.root):
        return Path.home() / ".cache" / "hpcm-tune" / "asha" / f"{plan.name}.pkl"
    return Path(plan.root) / "asha.pkl"


def trial_dirname(trial) -> str:
    """Short trial directories (Tune's default spells out every parameter)."""
    return f"trial_{trial.trial_id}"


def build_tuner(plan: Plan) -> tune.Tuner:
    config = plan.config
    resources = {"cpu": config.cpus_per_trial, "gpu": config.gpus_per_trial, **config.trial_resources}
    trainable = tune.with_resources(tune.with_parameters(tune_trainable, annotate=OffComparison(plan.root)),
                                    resources)
    if config.resume and tune.Tuner.can_restore(plan.root):
        print(f"resuming {plan.root}")
        return tune.Tuner.restore(plan.root, trainable=trainable, resume_errored=True)
    if plan.scheduler == "asha":
        state = _asha_state(plan)
        state.parent.mkdir(parents=True, exist_ok=True)
        scheduler = PersistentASHA(state, time_attr="epoch", max_t=config.max_epochs, grace_period=plan.grace,
                                   reduction_factor=config.reduction_factor)
    else:
        scheduler = FIFOScheduler()
    return tune.Tuner(
        trainable, param_space={},
        tune_config=tune.TuneConfig(metric="rd_score", mode="min", scheduler=scheduler,
                                    search_alg=build_searcher(plan), num_samples=-1,
                                    max_concurrent_trials=cluster_max_concurrent(config), reuse_actors=False,
                                    trial_dirname_creator=trial_dirname),
        run_config=tune.RunConfig(
            name=plan.name, storage_path=plan.storage, callbacks=_callbacks(plan), verbose=1,
            failure_config=tune.FailureConfig(max_failures=config.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1)))


def describe(plan: Plan) -> str:
    what = (f"{len(plan.configurations)} configurations (grid)" if plan.configurations is not None
            else f"{plan.config.num_samples} configurations ({plan.searcher})")
    sched = f"ASHA on rd_score, grace {plan.grace}" if plan.scheduler == "asha" else "FIFO"
    if plan.scheduler == "asha" and plan.grace >= plan.config.max_epochs:
        sched += " (= max epochs: ASHA cannot stop any trial)"
    return (f"{plan.name}: {what} x {plan.config.seeds} seed(s), each trial = {len(plan.lambdas)} λ models "
            f"({', '.join(f'{v:g}' for v in plan.lambdas)}, from {plan.lambdas_from}); {sched}; "
            f"max {plan.config.max_epochs} epochs")


def run_experiment(plan: Plan, command: str | None = None) -> int:
    """Run or resume; 0 when no trial errored, else 1; 128 + signal (130, 143) when a stop signal
    interrupted it (recorded in experiment.json and results.csv; ``command`` resumes it).
    The last line says how many errored, or how to resume."""
    existing = read_bytes(plan.root, EXPERIMENT_FILE)
    record = json.loads(json.dumps(plan.record()))        # as stored: tuples are lists
    if existing is not None:
        if not plan.config.resume:
            raise InputError(f"experiment {plan.root} exists; pass --resume to finish it or --name for a new one")
        before = json.loads(existing)
        changed = changed_settings(before, record)
        if changed:   # the restored Tuner would keep the old plan while experiment.json claimed the new one
            raise InputError(f"--resume with other settings than {plan.root} was started with: "
                             f"{'; '.join(changed)}; rerun with its settings or give a new --name")
        record = before
    print(describe(plan))
    start_ray(plan)
    check_resources(plan)
    _write_record(plan, record, "running", command)
    start = time.perf_counter()
    with StopSignals() as stop:
        grid = build_tuner(plan).fit()
    table = pd.DataFrame(trial_rows(grid, plan.config.max_epochs, interrupted=stop.received is not None))
    write_bytes(plan.root, RESULTS_FILE, table.to_csv(index=False).encode())
    _write_record(plan, record, "interrupted" if stop.received else "finished", command)
    counts = table["status"].value_counts() if not table.empty else {}
    interrupted = int(counts.get("INTERRUPTED", 0))
    print(f"\n{len(table)} trials in {time.perf_counter() - start:.0f} s: "
          f"{counts.get('TERMINATED', 0)} finished, {counts.get('STOPPED', 0)} stopped early by ASHA"
          + (f", {interrupted} interrupted" if stop.received else ""))
    best = ranking(table) if not table.empty else table
    if not best.empty:
        print("\nconfigurations by mean validation rd_score (lower is better; STOPPED and ERROR excluded):")
        print(best.to_string(index=False))
    print(f"\nresults: {plan.root}/{RESULTS_FILE}")
    if stop.received:
        name = signal.Signals(stop.received).name
        sys.stdout.flush()
        print(f"interrupted by {name}: {interrupted} of {len(table)} trials unfinished, their checkpoints kept; "
              f"resume with: {command or 'the same command with --resume'}", file=sys.stderr)
        return exit_status(stop.received)
    print(f"next:    python -m analysis.evaluate {plan.root} && python -m analysis.report {plan.root}")
    errored = int(counts.get("ERROR", 0))
    where = f"; messages: column 'error' of {plan.root}/{RESULTS_FILE} and error.txt in each trial dir" if errored else ""
    print(f"{errored} of {len(table)} trials errored{where}")
    return 1 if errored else 0


def _write_record(plan: Plan, record: dict, status: str, command: str | None) -> None:
    """experiment.json with the run's ``status`` (running, interrupted, finished) and its resume command."""
    record.update(status=status, resume_command=command)
    write_bytes(plan.root, EXPERIMENT_FILE, json.dumps(record, indent=2).encode())
