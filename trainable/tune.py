"""The thin Ray Tune adapter: one trial trains one configuration at every λ (``train_curve``).

Each epoch's metrics go to ``tune.report`` with the epoch's checkpoint directory; a
restarted trial (retry after a crash, or ``--resume``) continues from
``tune.get_checkpoint()``. With two or more GPUs per trial the λ models are spread over
them; a trial Ray gave GPUs that torch cannot use fails at once, naming the cause (a GPU
trial never trains on the CPU). The loader gets the trial's CPUs but one as workers, unless
``num_workers`` is set. ``annotate(params, metrics) -> dict`` (the search's BD-rate vs off) adds metrics
before they are reported. This module is the only place in ``trainable/`` that imports Ray.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import fields, replace
from pathlib import Path
from typing import Callable

import ray
from ray import tune

from .config import TrainConfig
from .curve import CURVE_LAST, CurveConfig, train_curve
from .data import default_workers
from .device import require_cuda, trial_devices

Annotate = Callable[[dict, dict], dict]


def tune_trainable(config: dict, annotate: Annotate | None = None) -> None:
    """Ray Tune entry point; ``config`` holds TrainConfig fields plus ``lambdas``,
    ``configuration`` and ``is_off``."""
    gpu_ids = ray.get_gpu_ids()
    if gpu_ids:
        require_cuda(f"Ray gave this trial GPU(s) {list(gpu_ids)}")
    names = {f.name for f in fields(TrainConfig)}
    lambdas = tuple(float(v) for v in config["lambdas"])
    values = {k: v for k, v in config.items() if k in names}
    base = TrainConfig.from_dict({**values, "lmbda": lambdas[0]})
    if base.num_workers is None:
        base = replace(base, num_workers=default_workers(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
    if base.scratch_dir:
        Path(base.scratch_dir).expanduser().mkdir(parents=True, exist_ok=True)
    local = Path(tempfile.mkdtemp(prefix="hpcm-trial-", dir=base.scratch_dir and Path(base.scratch_dir).expanduser()))
    base = replace(base, save_path=str(local), save_best=False)
    curve = CurveConfig(base, lambdas, trial_devices(gpu_ids))
    resume = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            shutil.copy2(Path(d) / CURVE_LAST, local / CURVE_LAST)
        resume = local / CURVE_LAST
    node_id = ray.get_runtime_context().get_node_id()

    def report(metrics: dict, checkpoint_dir: str | None) -> None:
        metrics = {**metrics, "node_id": node_id}
        if annotate is not None:
            metrics.update(annotate(config, metrics))
        ckpt = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        tune.report(metrics, checkpoint=ckpt)

    try:
        train_curve(curve, report, resume=resume)
    finally:
        shutil.rmtree(local, ignore_errors=True)
