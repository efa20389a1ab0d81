"""Budgets for ``search.run --preset``: every value a preset sets can be overridden by a flag.

A trial trains one configuration at every λ (K models in lockstep), so ``num_samples``
counts configurations (Optuna spaces; enumerated spaces train their whole grid), and a
trial's cost is K runs of ``max_epochs``.
"""
from __future__ import annotations

from trainable.pretrained import warm_start_path

PRESETS: dict[str, dict] = {
    # The `make demo` path: 2 CPU cores, under 15 minutes (README: measured). Every λ model starts from the
    # shipped HPCM_Tiny warm start (λ 0.013, 2400 steps: trainable.pretrained) and is fine-tuned 192 steps
    # of batch 4 (training, steps and their image decoding, was 85 % of a trial at batch 8 x 240 steps:
    # benchmarks.demo_trial_profile); 12 epochs so the official step decay gives the last epoch lr/10
    # (settled models, not lr noise). The λs
    # go *down* from the warm start's (×~3 apart): a few hundred steps can shed rate (and PSNR)
    # but cannot raise a Tiny model's PSNR, so higher λs would only add bits (non-monotone curves).
    "cpu-smoke": {"model": "HPCM_Tiny", "max_epochs": 12, "grace_epochs": 2, "num_samples": 4, "seeds": 1,
                  "batch_size": 4, "patch_size": 128, "steps_per_epoch": 16, "learning_rate": 5e-4,
                  "lambdas": (0.0005, 0.0015, 0.0045, 0.013), "init_weights": str(warm_start_path()),
                  "cpus_per_trial": 1, "gpus_per_trial": 0, "max_concurrent": 2},
    # A few GPU-hours: HPCM_Base, short epochs; one GPU shared by a trial's λ models.
    "gpu-short": {"model": "HPCM_Base", "max_epochs": 50, "grace_epochs": 10, "num_samples": 8, "seeds": 1,
                  "batch_size": 8, "patch_size": 256, "steps_per_epoch": 500, "learning_rate": 1e-4,
                  "lambdas": None, "cpus_per_trial": 4, "gpus_per_trial": 1, "max_concurrent": 4},
    # The paper's budget: 3000 epochs, λ models spread over 2 GPUs per trial, 3 seeds.
    "paper": {"model": "HPCM_Base", "max_epochs": 3000, "grace_epochs": 200, "num_samples": 16, "seeds": 3,
              "batch_size": 16, "patch_size": 256, "steps_per_epoch": None, "learning_rate": 1e-4,
              "lambdas": None, "cpus_per_trial": 8, "gpus_per_trial": 2, "max_concurrent": 8},
}


def default_preset() -> str:
    import torch

    return "gpu-short" if torch.cuda.is_available() else "cpu-smoke"
