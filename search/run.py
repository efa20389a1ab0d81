"""``python -m search.run --space phase2_delta``: Ray Tune search over HPCM training runs.

λ-aware by construction: every λ of the space is its own *bracket* (its own Tuner,
ASHA scheduler and searcher, in STORAGE/NAME/lambda=<λ>/), so a trial is only ever
compared with trials at the same λ, and Optuna's TPE never mixes loss scales.
Phase-1 aware: ASHA's grace period is at least the longest truncation + 1 epochs,
so no configuration is judged on low-passed inputs (validation is never truncated).
"""
from __future__ import annotations

import argparse
import sys

from spaces import DERIVED, get_space, list_spaces
from trainable.cli import OneLineParser, run_cli
from trainable.config import TrainConfig
from trainable.data import ImageFolder, resolve_dataset
from trainable.errors import InputError
from trainable.models import MODEL_NAMES

from .presets import PRESETS, default_preset
from .searchers import SEARCHERS


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m search.run", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--space", help="a named space (see --list-spaces) or a .yaml/.json file")
    a("--list-spaces", action="store_true", help="print the named spaces and exit")
    a("--preset", choices=sorted(PRESETS), help="budget preset (default: cpu-smoke without GPU, else gpu-short)")
    a("--scheduler", choices=["asha", "fifo"], default="asha")
    a("--searcher", choices=SEARCHERS, help="default: the preset's")
    a("--num-samples", type=int, help="trials per λ (per grid point with --searcher grid)")
    a("--max-epochs", type=int, help="epochs of a trial that is never stopped")
    a("--grace-epochs", type=int, help="ASHA grace period (raised to cover Phase 1)")
    a("--reduction-factor", type=float, default=2.0, help="ASHA reduction factor")
    a("--metric", default="val_loss", help="metric to minimise within a λ bracket")
    a("--lambdas", type=float, nargs="+", help="override the space's λ values")
    a("--cpus-per-trial", type=float)
    a("--gpus-per-trial", type=float, help="fractions allowed, e.g. 0.5")
    a("--max-concurrent", type=int)
    a("--max-failures", type=int, default=1, help="retries of a crashed trial from its last checkpoint")
    a("--address", help="existing Ray cluster (default: start a local one)")
    a("--dashboard-host", default="127.0.0.1", help="bind address of the local Ray dashboard")
    a("--storage-path", default="ray_results")
    a("--name", help="experiment name (default: the space name)")
    a("--resume", action="store_true", help="finish an interrupted experiment of the same name")
    a("--wandb", action="store_true", help="log trials to W&B through Ray's callback (offline unless --wandb-mode)")
    a("--wandb-mode", choices=["offline", "online"], default=None)
    a("--wandb-project", default="hpcm-tune")
    a("--train-dataset", help="training image folder (default: built-in sample images)")
    a("--test-dataset", help="validation image folder (default: built-in sample images)")
    a("--model", choices=MODEL_NAMES, help="default: the preset's")
    a("--batch-size", type=int)
    a("--steps-per-epoch", type=int)
    a("--seed", type=int, default=0)
    return p


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Fill unset flags from the preset; validate ranges."""
    preset = PRESETS[args.preset or default_preset()]
    for key, value in preset.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    for name in ("num_samples", "max_epochs", "grace_epochs", "max_concurrent"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.cpus_per_trial <= 0 or args.gpus_per_trial < 0:
        raise InputError("--cpus-per-trial must be > 0 and --gpus-per-trial >= 0")
    if args.reduction_factor <= 1:
        raise InputError("--reduction-factor must be > 1")
    return args


def derive(max_epochs: int):
    """Map space keys to TrainConfig keys (truncation_fraction → truncation_epochs)."""
    def convert_fraction(f: float) -> int:
        return 0 if f <= 0 else max(1, min(max_epochs - 1, round(f * max_epochs)))

    def mapping(key: str):
        if key in DERIVED:
            return DERIVED[key], convert_fraction
        return key, (lambda v: v)
    return mapping


def base_config(args, space, lmbda: float) -> dict:
    mapping = derive(args.max_epochs)
    cfg = TrainConfig(model_name=args.model, train_dataset=args.train_dataset, test_dataset=args.test_dataset,
                      lmbda=lmbda, epochs=args.max_epochs, batch_size=args.batch_size, patch_size=args.patch_size,
                      steps_per_epoch=args.steps_per_epoch, learning_rate=args.learning_rate, seed=args.seed,
                      num_workers=0 if args.cpus_per_trial < 2 else min(4, int(args.cpus_per_trial))).to_dict()
    for key, value in space.fixed.items():
        name, convert = mapping(key)
        cfg[name] = convert(value)
    TrainConfig.from_dict(cfg)   # fail fast on bad fixed values
    del cfg["save_path"]         # each trial writes to its own local directory
    return cfg


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_spaces:
        print("\n".join(list_spaces()))
        return 0
    if not args.space:
        raise InputError("--space is required (see --list-spaces)")
    space = get_space(args.space)
    args = resolve(args)
    for path, split in ((args.train_dataset, "train"), (args.test_dataset, "val")):
        ImageFolder(resolve_dataset(path, split), train=False).verify()   # fail before any trial starts
    from .experiment import run_experiment   # imports Ray: only once the arguments are valid

    return run_experiment(args, space, tuple(args.lambdas or space.lambdas))


if __name__ == "__main__":
    sys.exit(run_cli(main))
