"""``python -m search.run --space phase2_delta``: Ray Tune search over HPCM configurations.

A trial trains one configuration at every λ of the space (its RD curve) for one seed; the
regularizers-off configuration is always part of the experiment, with the same seeds.
Choice-only spaces are enumerated (inert combinations removed), others are searched with
Optuna TPE at configuration level. Everything is checked before Ray starts.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from typing import TYPE_CHECKING

from spaces import list_spaces
from trainable import warm_start as warm_starts
from trainable.cli import OneLineParser, run_cli
from trainable.errors import InputError

from .config import SCHEDULERS, SEARCHERS, SearchConfig
from .interrupt import resume_command
from .power_plan import AUTO, goal_from, seeds_value
from .power_plan import apply as apply_power
from .presets import PRESETS

if TYPE_CHECKING:
    from .plan import Plan

PLANNING = ("dry_run", "step_seconds", "plan_gpus", "step_seconds_from", "measure_loader",
            "gpu_memory_gib")     # flags of the plan's cost, not of the search
POWER = ("pilot", "effect", "target_power")             # flags of the power plan (search.power_plan)


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
    a("--seeds", type=seeds_value, help="seeds per configuration (off included), or 'auto': the fewest that "
                                        "reach --target-power for --effect with --pilot's noise")
    a("--max-epochs", type=int, help="validations (epochs of --steps-per-epoch steps) of a trial never stopped")
    a("--max-steps", type=int, help="optimizer steps per λ model (instead of --max-epochs; rounded up to whole "
                                    "--steps-per-epoch periods)")
    a("--grace-epochs", type=int, help="ASHA grace period (raised to cover Phase 1)")
    a("--reduction-factor", type=float, help="ASHA reduction factor")
    a("--lambdas", type=float, nargs="+", help="override the space's λ values")
    a("--model", help="model name (default: the space's, else the preset's)")
    a("--batch-size", type=int)
    a("--patch-size", type=int)
    a("--steps-per-epoch", type=int, help="optimizer steps between validations (an 'epoch')")
    a("--learning-rate", type=float)
    a("--amp", choices=("fp32", "bf16"), help="bf16: autocast; noise, rates and regularizers stay fp32 (default fp32)")
    a("--compile", action="store_true", default=None, help="torch.compile every λ model")
    a("--deterministic", action="store_true", default=None,
      help="bit-identical GPU runs for paired studies (deterministic kernels, no cuDNN autotuning; slower)")
    a("--num-workers", type=int, help="data loader workers per trial (default: the trial's CPUs minus one)")
    a("--checkpoint-every", type=int, help="write a trial's checkpoint every N epochs and after the last (default 1)")
    a("--scratch-dir", help="node-local folder for a trial's working files and checkpoints (default: the system temp dir)")
    a("--seed", type=int, help="first training seed; also seeds the searcher (default 0)")
    a("--cpus-per-trial", type=float)
    a("--gpus-per-trial", type=float, help="fractions share a GPU; >= 2 spreads a trial's λ models over GPUs")
    a("--trial-resources", type=json.loads, help='custom Ray resources per trial, JSON, e.g. \'{"big_node": 1}\'')
    a("--max-concurrent", type=int, help="trials at once (default: as many as the cluster's GPUs and CPUs fit)")
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
    a("--init-weights", help="warm start: a state_dict file for every λ, a folder with one file per λ (its name "
                             "holds the λ), or a JSON mapping λ → file; 'none': from scratch "
                             "(default: the preset's; cpu-smoke ships an HPCM_Tiny warm start)")
    a("--dry-run", action="store_true", help="print the plan and its estimated cost, then exit (Ray is not started)")
    a("--step-seconds", type=float, help="dry run: seconds per optimizer step of one λ model at the plan's batch "
                                         "and patch (default: measured on a GPU machine, else a documented figure)")
    a("--plan-gpus", type=int, help="dry run: GPUs for the wall-clock line (default: this machine's, else 8)")
    a("--step-seconds-from", help="dry run: the step time benchmarks.gpu_check measured, from its JSON "
                                  "(default: benchmarks/results/gpu_check.json when it exists)")
    a("--measure-loader", action="store_true", help="dry run: time the loader on the training folder "
                                                    "(default: the documented 2K-PNG figure)")
    a("--gpu-memory-gib", type=float, help="memory of one GPU, to check that a trial's λ models fit "
                                           "(default: this machine's GPU, else 80)")
    a("--pilot", help="experiment folder or points CSV whose seed noise sets --seeds auto and the power line "
                      "(analysis.power)")
    a("--effect", type=float, help="with --pilot: the BD-rate %% the study must detect (default -5)")
    a("--target-power", type=float, help="with --pilot: the power --seeds auto aims at (default 0.8)")
    return p


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    if not args.space:
        raise InputError("--space is required (see --list-spaces)")
    values = {k: v for k, v in vars(args).items() if k not in ("space", "preset", "list_spaces", "resume", "wandb",
                                                               "test_dataset", *PLANNING, *POWER)}
    if args.seeds == AUTO:
        values["seeds"] = None                                  # resolved from --pilot (search.power_plan)
    if args.test_dataset is not None:
        print("note: --test-dataset is deprecated, it names the validation folder: use --val-dataset", file=sys.stderr)
        if args.val_dataset not in (None, args.test_dataset):
            raise InputError("--test-dataset (deprecated) and --val-dataset name different folders; give --val-dataset")
        values["val_dataset"] = args.test_dataset
    if args.trial_resources is not None and not isinstance(args.trial_resources, dict):
        raise InputError("--trial-resources must be a JSON object")
    return SearchConfig.create(args.space, args.preset, resume=args.resume, wandb=args.wandb, **values)


def warm_start(plan: Plan) -> Plan:
    """Put ``init_weights`` (the preset's or ``--init-weights``: a file, a folder or a mapping
    λ → file) on every λ model's TrainConfig, after resolving a file for every λ and checking
    that each loads strictly into every model the space can choose. The preset's file is for one
    model (cpu-smoke: the shipped HPCM_Tiny warm start): another model then starts from scratch,
    and a space that searches that model against others is refused (one arm warm-started, the
    others from scratch, would compare the warm start, not the models)."""
    spec = plan.config.init_weights
    if spec is None:
        return plan
    from trainable.pretrained import WARM_START_MODEL

    models = space_models(plan)
    if spec == PRESETS[plan.config.preset].get("init_weights") and models != [WARM_START_MODEL]:
        if WARM_START_MODEL in models:
            raise InputError(f"space {plan.space.name!r} searches model over {', '.join(models)}, but preset "
                             f"{plan.config.preset}'s warm start fits {WARM_START_MODEL} only; pass --init-weights "
                             "none (every model from scratch) or fix the model")
        print(f"note: preset {plan.config.preset}'s warm start is for {WARM_START_MODEL}; "
              f"{', '.join(models)} start{'s' if len(models) == 1 else ''} from scratch")
        return plan
    mapping = warm_starts.resolve(spec, plan.lambdas)
    for model in models:      # torch: one CheckpointError line naming the λ and the model on a misfit
        warm_starts.check_fit(model, mapping)
    return replace(plan, base=replace(plan.base, init_weights=warm_starts.encode(mapping)))


def space_models(plan: Plan) -> list[str]:
    """Every model a configuration of the plan can train (a searched ``model``'s choices, else the base's)."""
    searched = plan.space.searched.get("model")
    return sorted({str(m) for m in searched.ends}) if searched is not None else [plan.base.model_name]


def lacks_weights(plan: Plan) -> bool:
    """A fine-tuning preset (``gpu-day``) without the checkpoints it fine-tunes."""
    return bool(PRESETS[plan.config.preset].get("fine_tunes")) and plan.base.init_weights is None


def dry_run(plan: Plan, step_seconds: float | None, gpus: int | None, step_seconds_from: str | None = None,
            measure_loader: bool = False, gpu_memory: float | None = None) -> int:
    """Print the plan and its cost; Ray is neither imported nor started. A plan whose λ models
    do not fit a GPU is refused after its lines."""
    if step_seconds is not None and not (math.isfinite(step_seconds) and step_seconds > 0):
        raise InputError(f"--step-seconds must be > 0, got {step_seconds}")
    if gpus is not None and gpus < 1:
        raise InputError(f"--plan-gpus must be >= 1, got {gpus}")
    from .cost import plan_cost

    if lacks_weights(plan):
        print(f"note: preset {plan.config.preset} fine-tunes released checkpoints; a real run needs --init-weights")
    cost = plan_cost(plan, step_seconds=step_seconds, gpus=gpus, step_seconds_from=step_seconds_from,
                     measure_loader=measure_loader, gpu_memory=gpu_memory)
    print("\n".join(cost.lines()))
    for memory in cost.memory.values():
        memory.check()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.list_spaces:
        print("\n".join(list_spaces()))
        return 0
    goal = goal_from(args.pilot, args.effect, args.target_power)
    config, power = apply_power(config_from_args(args), goal, args.seeds == AUTO)
    if power:
        print(power)
    from .plan import check_bd_rate, make_plan         # torch (datasets, models): after argparse and the cheap checks

    plan = warm_start(make_plan(config))                   # every check, before Ray starts
    check_bd_rate(plan)                                    # the dry run checks what the real run will
    if args.dry_run:
        return dry_run(plan, args.step_seconds, args.plan_gpus, args.step_seconds_from, args.measure_loader,
                       args.gpu_memory_gib)
    if lacks_weights(plan):
        raise InputError(f"preset {plan.config.preset} fine-tunes released checkpoints: pass --init-weights "
                         "(a folder or a JSON mapping with one checkpoint per λ, e.g. the official HPCM releases)")
    from .cost import check_memory

    check_memory(plan, args.gpu_memory_gib)
    from .experiment import run_experiment             # imports Ray and torch: only for a valid plan

    return run_experiment(plan, resume_command(argv))


if __name__ == "__main__":
    sys.exit(run_cli(main))
