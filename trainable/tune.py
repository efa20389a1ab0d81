"""The thin Ray Tune adapter: ``train(config, report)`` as a Tune function trainable.

Each epoch's metrics go to ``tune.report`` with the epoch's checkpoint directory; a
restarted trial (retry after a crash, or ``--resume``) continues from
``tune.get_checkpoint()``. The trainable is the only place in ``trainable/`` that
imports Ray.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from ray import tune

from .config import TrainConfig
from .trainer import LAST, train


def tune_trainable(config: dict) -> None:
    """Ray Tune entry point; ``config`` holds :class:`TrainConfig` fields."""
    local = Path(tempfile.mkdtemp(prefix="hpcm-trial-"))
    cfg = replace(TrainConfig.from_dict(config), save_path=str(local), save_best=False)
    resume = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            shutil.copy2(Path(d) / LAST, local / LAST)
        resume = local / LAST

    def report(metrics: dict, checkpoint_dir: str | None) -> None:
        ckpt = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        tune.report(metrics, checkpoint=ckpt)

    try:
        train(cfg, report, resume=resume)
    finally:
        shutil.rmtree(local, ignore_errors=True)
