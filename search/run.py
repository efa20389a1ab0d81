"""``python -m search.run --space phase2_delta``: Ray Tune search over HPCM configurations.

A trial trains one configuration at every λ of the space (its RD curve) for one seed; the
regularizers-off configuration is always part of the experiment, with the same seeds.
Choice-only spaces are enumerated (inert combinations removed), others are searched with
Optuna TPE at configuration level. Everything is checked before Ray starts.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from spaces import list_spaces
from trainable.cli import OneLineParser, run_cli
from trainable.errors import InputError

from .config import SCHEDULERS, SEARCHERS, SearchConfig
from .plan import Plan, make_plan
from .presets import PRESETS


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m search.run", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--space", help="a named space (see --list-spaces) or a .yaml/.json file")
    a("--list-spaces", action="store_true", help="print the named spaces and exit")
    a("--preset", choices=sorted(PRESETS), help="budget preset (default: cpu-smoke without GPU, else gpu-short)")
    a("--scheduler", choices=SCHEDULERS, help="default auto: FIFO for enumerated spaces, ASHA for Optuna ones")
    a("--searcher", choices=SEARCHERS, help="default auto: grid for choice-only spaces, else optuna")
    a("--num-samples", type=int, help="configurations to train with optuna/random (off included)")
    a("--seeds", type=int, help="seeds per configuration (off included)")
    a("--max-epochs", type=int, help="epochs of a trial that is never stopped")
    a("--grace-epochs", type=int, help="ASHA grace period (raised to cover Phase 1)")
    a("--reduction-factor", type=float, help="ASHA reduction factor")
    a("--lambdas", type=float, nargs="+", help="override the space's λ values")
    a("--model", help="model name (default: the space's, else the preset's)")
    a("--batch-size", type=int)
    a("--patch-size", type=int)
    a("--steps-per-epoch", type=int)
    a("--learning-rate", type=float)
    a("--seed", type=int, help="first training seed; also seeds the searcher (default 0)")
    a("--cpus-per-trial", type=float)
    a("--gpus-per-trial", type=float, help="fractions share a GPU; >= 2 spreads a trial's λ models over GPUs")
    a("--trial-resources", type=json.loads, help='custom Ray resources per trial, JSON, e.g. \'{"big_node": 1}\'')
    a("--max-concurrent", type=int)
    a("--max-failures", type=int, help="retries of a crashed trial from its last checkpoint (default 1)")
    a("--address", help="existing Ray cluster, e.g. ray://head:10001 (default: start a local one)")
    a("--dashboard-host", help="bind address of the local Ray dashboard (default 127.0.0.1)")
    a("--storage-path", help="experiment storage: a path (shared by all nodes) or a URI like s3://bucket/dir")
    a("--name", help="experiment name (default: the space name)")
    a("--resume", action="store_true", help="finish an interrupted experiment of the same name")
    a("--wandb", action="store_true", help="log trials to W&B through Ray's callback (offline unless --wandb-mode)")
    a("--wandb-mode", choices=["offline", "online"])
    a("--wandb-project")
    a("--train-dataset", help="training image folder (default: built-in sample train split)")
    a("--val-dataset", help="validation image folder, on which configurations are chosen (default: built-in "
                            "val split); the held-out test set is analysis.evaluate's")
    a("--test-dataset", help="deprecated alias of --val-dataset (it always named the validation folder)")
    a("--init-weights", help="start every λ model from these weights (state_dict); 'none': from scratch "
                             "(default: the preset's; cpu-smoke ships an HPCM_Tiny warm start)")
    return p


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    if not args.space:
        raise InputError("--space is required (see --list-spaces)")
    values = {k: v for k, v in vars(args).items()
              if k not in ("space", "preset", "list_spaces", "resume", "wandb", "test_dataset")}
    if args.test_dataset is not None:
        print("note: --test-dataset is deprecated, it names the validation folder: use --val-dataset", file=sys.stderr)
        if args.val_dataset not in (None, args.test_dataset):
            raise InputError("--test-dataset (deprecated) and --val-dataset name different folders; give --val-dataset")
        values["val_dataset"] = args.test_dataset
    if args.trial_resources is not None and not isinstance(args.trial_resources, dict):
        raise InputError("--trial-resources must be a JSON object")
    return SearchConfig.create(args.space, args.preset, resume=args.resume, wandb=args.wandb, **values)


def warm_start(plan: Plan) -> Plan:
    """Put ``init_weights`` (the preset's or ``--init-weights``) on every λ model's TrainConfig,
    after checking that it loads strictly into the model. The preset's file is for one model
    (cpu-smoke: the shipped HPCM_Tiny warm start); another model then starts from scratch."""
    path = plan.config.init_weights
    if path is None:
        return plan
    from trainable.pretrained import WARM_START_MODEL

    if path == PRESETS[plan.config.preset].get("init_weights") and plan.base.model_name != WARM_START_MODEL:
        print(f"note: preset {plan.config.preset}'s warm start is for {WARM_START_MODEL}; "
              f"{plan.base.model_name} starts from scratch")
        return plan
    from trainable.checkpoint import load_weights      # torch: raises CheckpointError (one line) on a misfit
    from trainable.models import create_model

    path = str(Path(path).expanduser().resolve())
    load_weights(create_model(plan.base.model_name), path)
    return replace(plan, base=replace(plan.base, init_weights=path))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_spaces:
        print("\n".join(list_spaces()))
        return 0
    plan = warm_start(make_plan(config_from_args(args)))   # every check, before Ray starts
    from .experiment import run_experiment             # imports Ray and torch: only for a valid plan

    return run_experiment(plan)


if __name__ == "__main__":
    sys.exit(run_cli(main))
