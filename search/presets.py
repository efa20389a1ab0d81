"""Budgets for ``search.run --preset``: every value a preset sets can be overridden by a flag.

A trial trains one configuration at every λ (K models in lockstep), so ``num_samples``
counts configurations (Optuna spaces; enumerated spaces train their whole grid), and a
trial's cost is K runs of ``max_epochs``.
"""
from __future__ import annotations

from trainable.pretrained import warm_start_path

# Keys a preset may set that are not SearchConfig fields: the model it is meant for (ranks below a
# space's), whether it measures a BD-rate (check_bd_rate) and whether its trials fine-tune (search.run).
PRESET_ONLY = frozenset({"model", "bd_rate", "fine_tunes"})

PRESETS: dict[str, dict] = {
    # The `make demo` path: 2 CPU cores, under 15 minutes (docs/results.md: measured). Every λ model starts from the
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
    # A few GPU-hours: HPCM_Base, short epochs; one GPU shared by a trial's λ models. Trials at
    # once: as many as the cluster's GPUs (search.cluster), as for every preset below. CPUs per
    # trial: loader workers + 1, enough for the crops/s the GPUs need at the documented 2K-PNG
    # decode rate (search.loader_plan; the dry run warns when the loader binds).
    "gpu-short": {"model": "HPCM_Base", "max_epochs": 50, "grace_epochs": 10, "num_samples": 8, "seeds": 1,
                  "batch_size": 8, "patch_size": 256, "steps_per_epoch": 500, "learning_rate": 1e-4,
                  "lambdas": None, "cpus_per_trial": 8, "gpus_per_trial": 1},
    # The paper's budget: 3000 epochs, λ models spread over 2 GPUs per trial, 3 seeds.
    "paper": {"model": "HPCM_Base", "max_epochs": 3000, "grace_epochs": 200, "num_samples": 16, "seeds": 3,
              "batch_size": 16, "patch_size": 256, "steps_per_epoch": None, "learning_rate": 1e-4,
              "lambdas": None, "cpus_per_trial": 16, "gpus_per_trial": 2,
              "checkpoint_every": 10},   # 6 HPCM_Base λ models are ~4.9 GB a checkpoint; ASHA rungs are multiples of 10
    # A day on 8 GPUs (docs/planning.md): every λ model fine-tuned from its released
    # checkpoint (--init-weights: a folder or mapping with one file per λ, required) for 50,000
    # steps at the official batch and crop, with and without the regularizers. phase2_delta at 3
    # seeds: 12 trials x 6 λ, ~150 GPU-hours by the dry run's default step time; 2 GPUs per
    # trial (3 λ models each), 4 trials at once on 8 GPUs, 3 rounds. lr 1e-5: the released
    # models ended at 1e-6 (official schedule); 1e-4 would first undo their convergence.
    # 16 CPUs: 15 loader workers at the documented 2K-PNG rate (~2.7 crops/s each) feed the
    # ~36 crops/s two GPUs need (batch 16 per lockstep step of 3 x 0.15 s); 4 would leave them
    # idle most of the time (search.loader_plan). 64 CPUs for 4 trials at once on an 8-GPU node.
    "gpu-day": {"model": "HPCM_Base", "max_steps": 50_000, "steps_per_epoch": 2_500, "grace_epochs": 4,
                "num_samples": 4, "seeds": 3, "batch_size": 16, "patch_size": 256, "learning_rate": 1e-5,
                "lambdas": None, "cpus_per_trial": 16, "gpus_per_trial": 2, "fine_tunes": True},
    # Phase 1's claim is convergence speed: from scratch, FIFO (a stopped curve would be censored),
    # validations every 5,000 steps for analysis.convergence's steps-to-quality; 3 λs across the
    # range, 200,000 steps (~5 % of the paper's 3000 Flickr2W epochs at batch 16), 1 GPU per trial.
    "gpu-convergence": {"model": "HPCM_Base", "max_steps": 200_000, "steps_per_epoch": 5_000, "scheduler": "fifo",
                        "num_samples": 4, "seeds": 3, "batch_size": 16, "patch_size": 256, "learning_rate": 1e-4,
                        "lambdas": (0.0035, 0.013, 0.0483), "init_weights": None, "cpus_per_trial": 16,
                        "gpus_per_trial": 1, "bd_rate": False},   # 3 λs: steps-to-quality, no BD-rate
}


def default_preset() -> str:
    """gpu-short with a usable GPU, cpu-smoke without one; a GPU that torch cannot use is an error."""
    import torch

    if torch.cuda.is_available():
        return "gpu-short"
    from trainable.device import cuda_problem, gpu_present
    from trainable.errors import InputError

    if gpu_present():
        raise InputError(f"this machine has an NVIDIA GPU, but {cuda_problem()}; fix that, "
                         "or pass --preset cpu-smoke to search on the CPU")
    return "cpu-smoke"
