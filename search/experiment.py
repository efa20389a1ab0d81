"""Run (or resume) one experiment: a λ bracket after another, then results.csv."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd

# One checkpoint is kept per trial, which makes Tune snapshot the experiment at every
# epoch; cheap for local storage, so silence the warning about it.
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")

import ray  # noqa: E402
from ray import tune
from ray.tune.schedulers import FIFOScheduler

from spaces import DERIVED, SearchSpace
from trainable.tune import tune_trainable

from .results import best_per_lambda, trial_rows
from .schedulers import PersistentASHA
from .run import base_config, derive
from .searchers import build_searcher, to_tune


def _init_ray(args) -> None:
    if ray.is_initialized():
        return
    if args.address:
        ray.init(address=args.address)
        print(f"connected to Ray cluster at {args.address}")
        return
    context = ray.init(include_dashboard=True, dashboard_host=args.dashboard_host,
                       num_cpus=os.cpu_count(), configure_logging=True, log_to_driver=False)
    url = getattr(context, "dashboard_url", None)
    if url:
        print(f"Ray dashboard: http://{url}  (bound to {args.dashboard_host}; token authentication on)")


def _wandb_mode(args) -> str:
    """Offline unless asked; set in the environment before Ray starts so that Ray's key
    check (driver) and the logging actors (workers) both see it."""
    mode = args.wandb_mode or os.environ.get("WANDB_MODE") or "offline"
    os.environ["WANDB_MODE"] = mode
    return mode


def _callbacks(args) -> list:
    if not args.wandb:
        return []
    from ray.air.integrations.wandb import WandbLoggerCallback

    return [WandbLoggerCallback(project=args.wandb_project, upload_timeout=30, log_config=True,
                                mode=_wandb_mode(args), excludes=["train_dataset", "test_dataset"])]


def _grace(args, param_space: dict) -> int:
    """ASHA's grace period covers the longest Phase 1 of any configuration (+1 epoch)."""
    candidates = [param_space.get("truncation_epochs", 0)]
    domain = param_space.get("truncation_epochs")
    if isinstance(domain, dict) and "grid_search" in domain:
        candidates = domain["grid_search"]
    elif hasattr(domain, "categories"):
        candidates = domain.categories
    longest = max([c for c in candidates if isinstance(c, int)] or [0])
    if not param_space.get("spectral_reg"):
        longest = 0
    return min(args.max_epochs, max(args.grace_epochs, longest + 1 if longest else 0))


def run_bracket(args, space: SearchSpace, lmbda: float, root: Path):
    """One λ: its own Tuner, ASHA and searcher. Resumes if the bracket exists."""
    mapping = derive(args.max_epochs)
    grid = args.searcher == "grid"
    param_space = {**base_config(args, space, lmbda), **to_tune(space, grid, mapping)}
    trainable = tune.with_resources(tune_trainable, {"cpu": args.cpus_per_trial, "gpu": args.gpus_per_trial})
    path = root / f"lambda={lmbda}"
    if args.resume and tune.Tuner.can_restore(str(path)):
        tuner = tune.Tuner.restore(str(path), trainable=trainable, resume_errored=True)
        print(f"λ={lmbda}: resuming {path}")
    else:
        off = {mapping(k)[0]: mapping(k)[1](v) for k, v in space.off.items() if k in space.searched} or None
        grace = _grace(args, param_space)
        scheduler = (PersistentASHA(path.with_name(f"{path.name}.asha.pkl"), time_attr="epoch", max_t=args.max_epochs,
                                    grace_period=grace, reduction_factor=args.reduction_factor)
                     if args.scheduler == "asha" else FIFOScheduler())
        tuner = tune.Tuner(
            trainable, param_space=param_space,
            tune_config=tune.TuneConfig(metric=args.metric, mode="min", scheduler=scheduler,
                                        search_alg=build_searcher(args.searcher, args.seed, args.metric,
                                                                  args.max_epochs, args.max_concurrent, off),
                                        num_samples=args.num_samples, reuse_actors=False),
            run_config=tune.RunConfig(
                name=path.name, storage_path=str(root), callbacks=_callbacks(args), verbose=1,
                failure_config=tune.FailureConfig(max_failures=args.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1)))
        print(f"λ={lmbda}: {args.scheduler} (grace {grace} epochs, max {args.max_epochs}), {args.searcher} search")
    return tuner.fit()


def run_experiment(args, space: SearchSpace, lambdas: tuple[float, ...]) -> int:
    root = Path(args.storage_path).expanduser().resolve() / (args.name or space.name)
    root.mkdir(parents=True, exist_ok=True)
    if args.wandb:
        _wandb_mode(args)
    _init_ray(args)
    start = time.perf_counter()
    rows = []
    for lmbda in lambdas:
        rows += trial_rows(run_bracket(args, space, lmbda, root), lmbda)
    table = pd.DataFrame(rows)
    table.to_csv(root / "results.csv", index=False)
    stopped = int(((table["status"] == "TERMINATED") & (table["epochs_run"] < args.max_epochs)).sum())
    print(f"\n{len(table)} trials in {time.perf_counter() - start:.0f} s: "
          f"{(table['status'] == 'ERROR').sum()} errored, {stopped} stopped early by {args.scheduler}")
    best = best_per_lambda(table, [DERIVED.get(k, k) for k in space.searched])
    if not best.empty:
        print("\nbest configuration per λ (by validation loss at its best epoch):")
        print(best.to_string(index=False))
    print(f"\nresults: {root / 'results.csv'}")
    print(f"report:  python -m analysis.report {root}")
    return 0



