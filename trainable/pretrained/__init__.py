"""Shipped warm-start weights (torch-free to import; the file is package data).

``hpcm_tiny_mse.pth.tar``: HPCM_Tiny inference state_dict (~2 MB) trained by this project's
own code, ``python -m trainable.pretrained.make`` (``trainable.trainer.train``: MSE,
λ = 0.013, built-in sample ``train`` split, patch 128, batch 8, Adam 1e-3 with cosine decay,
seed 0; see :data:`trainable.pretrained.make.RECIPE`). The ``cpu-smoke`` search preset (``make
demo``) starts every λ model from it (``TrainConfig.init_weights``) so that a few hundred
CPU steps per λ give monotone RD curves. It is a demo aid, not an RD result: a warm start
from one mid-λ model is not how the paper trains.
"""
from __future__ import annotations

from pathlib import Path

WARM_START = "hpcm_tiny_mse.pth.tar"
WARM_START_MODEL = "HPCM_Tiny"


def warm_start_path() -> Path:
    """Absolute path of the shipped HPCM_Tiny warm start (resolved from the installed package)."""
    return Path(__file__).resolve().with_name(WARM_START)
