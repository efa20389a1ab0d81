"""One configuration at every λ: its RD curve, the unit a search compares.

K models (one per λ), each with its own optimizer, trained in lockstep on one shared batch
stream (``trainer.train_together``: one decode and crop per step for all K, validation images
decoded once; on CUDA each model on its own stream, spread over the trial's GPUs when it has
several). Every step reseeds from (seed, epoch, step), so model k is exactly the run
``train()`` would give at λ_k. One atomic checkpoint holds all K (every
``checkpoint_every`` epochs and after the last). Each
epoch reports every per-λ metric under ``lambda=<λ>/<name>`` and ``rd_score``, the mean over
λ of log(val_loss_λ): comparable across configurations at the same epoch, lower is better.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from .checkpoint import load_file, save_atomic
from .config import TrainConfig
from .device import kernel_choice
from .errors import CheckpointError, InputError
from .trainer import (Datasets, Report, Run, announce, checkpoint_due, export_inference, resolve_device, seed_epoch,
                      train_together)

CURVE_LAST = "curve_last.pth.tar"
CURVE_FORMAT = 1
SHARED = ("epoch", "phase", "tau", "phase2_active", "lr", "global_step")


def lambda_key(lmbda: float) -> str:
    return f"lambda={lmbda:g}"


def final_model_name(lmbda: float) -> str:
    return f"model_final_{lambda_key(lmbda)}.pth.tar"


@dataclass(frozen=True)
class CurveConfig:
    """Every setting but λ (``base.lmbda`` is ignored), the λs, and one device per λ model
    (cycled; empty: ``base.device`` for all)."""

    base: TrainConfig
    lambdas: tuple[float, ...]
    devices: tuple[str, ...] = ()

    def runs(self) -> list[TrainConfig]:
        if not self.lambdas or len(set(self.lambdas)) != len(self.lambdas):
            raise InputError(f"a curve needs distinct λ values, got {list(self.lambdas)}")
        return [replace(self.base, lmbda=float(lmbda)).validated() for lmbda in self.lambdas]

    def device(self, k: int) -> str:
        return self.devices[k % len(self.devices)] if self.devices else self.base.device


def rd_score(val_losses: list[float]) -> float:
    """Mean over λ of log(val_loss_λ); inf when a loss is not positive and finite."""
    if any(not (math.isfinite(v) and v > 0) for v in val_losses):
        return math.inf
    return sum(math.log(v) for v in val_losses) / len(val_losses)


def train_curve(config: CurveConfig, report: Report, resume: str | Path | None = None) -> dict:
    """Train (or resume) the K λ models; ``report(metrics, checkpoint_dir)`` once per epoch,
    after ``checkpoint_dir/curve_last.pth.tar``; the last epoch also leaves one inference
    state_dict per λ there (:func:`final_model_name`)."""
    configs = config.runs()
    devices = [resolve_device(config.device(k)) for k in range(len(configs))]
    with kernel_choice(devices, config.base.deterministic):
        return _train_curve(config, configs, devices, report, resume)


def _train_curve(config: CurveConfig, configs: list[TrainConfig], devices: list, report: Report,
                 resume: str | Path | None) -> dict:
    save_dir = Path(config.base.save_path)
    data = Datasets(configs[0])
    steps = data.steps_per_epoch(configs[0])
    runs = []
    for cfg, device in zip(configs, devices):
        seed_epoch(cfg.seed, -1)     # every λ model starts from the same initial weights
        runs.append(Run(cfg, device, steps))
    if resume is not None:
        _restore(runs, config.lambdas, resume)
    announce(runs)
    batches = data.batches(configs[0], runs[0].epoch, pin_memory=any(run.device.type == "cuda" for run in runs))
    metrics: dict = {}
    while not runs[0].done:
        per_run = train_together(runs, data, batches)
        written = checkpoint_due(runs[0])
        if written:
            save_atomic({"format": CURVE_FORMAT, "lambdas": list(config.lambdas), "runs": [r.state() for r in runs]},
                        save_dir / CURVE_LAST)
        if runs[0].done:
            for lmbda, run in zip(config.lambdas, runs):
                export_inference(run.model, save_dir / final_model_name(lmbda))
        metrics = {key: per_run[0][key] for key in SHARED}
        for lmbda, m in zip(config.lambdas, per_run):
            m.pop("improved")
            metrics.update({f"{lambda_key(lmbda)}/{k}": v for k, v in m.items() if k not in SHARED})
        metrics["rd_score"] = rd_score([m["val_loss"] for m in per_run])
        report(metrics, str(save_dir) if written else None)
    return metrics


def _restore(runs: list[Run], lambdas: tuple[float, ...], path: str | Path) -> None:
    raw = load_file(path)
    if not (isinstance(raw, dict) and raw.get("format") == CURVE_FORMAT and isinstance(raw.get("runs"), list)):
        raise CheckpointError(f"{path} is not a curve checkpoint (format {CURVE_FORMAT})")
    if [float(v) for v in raw.get("lambdas", [])] != [float(v) for v in lambdas]:
        raise CheckpointError(f"{path} holds λ {raw.get('lambdas')}, this curve has {list(lambdas)}")
    for run, state in zip(runs, raw["runs"]):
        run.load_state(state, f"{path} ({lambda_key(run.config.lmbda)})")
