"""Does the data loader keep a trial's GPUs busy? Demand against supply, in crops per second.

A trial's K λ models train in lockstep on one shared batch per step (``trainer.train_together``),
each GPU running its λ models one after another, so a lockstep step takes
ceil(K / GPUs per trial) x (one model's step) and the GPUs need batch / that many crops a second.
The loader supplies workers x (crops a second one worker decodes and crops): the trial's CPUs
but one (``--num-workers`` to set it), at the rate ``--measure-loader`` measures on the training
folder, else the one ``benchmarks.loader`` measured on 2040x1356 PNGs (DIV2K-sized). When supply
is short, every step waits for it: the cost counts the step at the loader's pace.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

from .measured import measured
from .plan import Plan

REFERENCE_FOLDER = "2040x1356_png"


@dataclass(frozen=True)
class LoaderPlan:
    batch: int
    models_per_gpu: int
    step_seconds: float            # one λ model's step
    workers: int
    crops_per_worker: float
    source: str

    @property
    def lockstep_seconds(self) -> float:
        return self.models_per_gpu * self.step_seconds

    @property
    def demand(self) -> float:
        """Crops a second the trial's GPUs consume."""
        return self.batch / self.lockstep_seconds

    @property
    def supply(self) -> float:
        """Crops a second the loader makes (no workers: the training process itself, between steps)."""
        return max(self.workers, 1) * self.crops_per_worker

    @property
    def slowdown(self) -> float:
        """How much longer a step takes than the GPUs need (1: the loader keeps up)."""
        return max(1.0, self.demand / self.supply)

    def cpus_needed(self) -> int:
        return math.ceil(self.demand / self.crops_per_worker) + 1

    def lines(self) -> list[str]:
        out = [f"  loader: the GPUs need {self.demand:.1f} crops/s per trial (batch {self.batch} per lockstep step "
               f"of {self.lockstep_seconds:.3g} s: {self.models_per_gpu} λ models per GPU x {self.step_seconds:.3g} s); "
               f"it supplies {self.supply:.1f} ({self.workers} workers x {self.crops_per_worker:.2f} crops/s, "
               f"{self.source})"]
        if self.slowdown > 1:
            out.append(f"  warning: the loader binds: the GPUs wait {1 - 1 / self.slowdown:.0%} of every step, and the "
                       f"cost below counts it (x{self.slowdown:.2f}); --cpus-per-trial {self.cpus_needed()} would keep up")
        return out


def models_per_gpu(lambdas: int, gpus_per_trial: float) -> int:
    """λ models one GPU runs: a trial's spread over its GPUs, or, for a fraction of a GPU, those of
    every trial sharing it."""
    if gpus_per_trial >= 1:
        return math.ceil(lambdas / gpus_per_trial)
    return lambdas * math.floor(1 / gpus_per_trial + 1e-9)


def measure_crops_per_second(folder: str | Path, patch: int, crops: int = 12) -> float:
    """Crops a second one process makes from ``folder`` (the loader's own decode and crop)."""
    import torch

    from trainable.data import dataset_manifest
    from trainable.data.folder import random_crop

    files = dataset_manifest(folder).files
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    picks = [files[int(i)] for i in torch.randint(len(files), (crops,), generator=g)]
    start = time.perf_counter()
    for path in picks:
        random_crop(path, patch, g)
    return crops / (time.perf_counter() - start)


def loader_plan(plan: Plan, step_seconds: float, measure: bool = False) -> LoaderPlan:
    from trainable.data import default_workers

    cfg = plan.config
    workers = plan.base.num_workers if plan.base.num_workers is not None else default_workers(cfg.cpus_per_trial)
    if measure:
        rate = measure_crops_per_second(plan.datasets["train"], plan.base.patch_size)
        source = f"--measure-loader: measured here on {plan.datasets['train']}"
    else:
        rate = measured("loader", REFERENCE_FOLDER, "images_per_s_after")
        source = f"benchmarks/results.json, {REFERENCE_FOLDER.replace('_', ' ')}; --measure-loader for yours"
    return LoaderPlan(plan.base.batch_size, models_per_gpu(len(plan.lambdas), cfg.gpus_per_trial), step_seconds,
                      workers, rate, source)
