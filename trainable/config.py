"""``TrainConfig``: the one typed configuration that flows CLI → search → trainable."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from .errors import InputError

ALIGNMENTS = ("subbands", "ll")
SIGNS = ("repel", "attract")
SCALE_LATENTS = ("model", "full", "new")
METRICS = ("mse", "ms-ssim")
LR_SCHEDULES = ("official", "cosine")
PRECISIONS = ("fp32", "bf16")
MAX_TAU = math.sqrt(2)  # the largest normalised DCT radius
# λ scales: MSE models weigh 255²·MSE (official 0.0018–0.0483), MS-SSIM models 1 − MS-SSIM
# (CompressAI 2.4–60.5). A λ from the other scale trains a useless (near-zero-rate) model.
LAMBDA_SCALE = {"mse": (0.0, 1.0), "ms-ssim": (1.0, math.inf)}
# The fields of each regularizer, its on/off switch first: inert while the switch is off.
PHASE1_FIELDS = ("spectral_reg", "tau_init", "tau_final", "truncation_epochs", "phase1_mask")
PHASE2_FIELDS = ("phase2_reg", "delta", "phase2_aligner", "distance", "alignment", "phase2_sign", "scale_latents",
                 "phase2_start_epoch")


@dataclass
class TrainConfig:
    """Everything one training run needs. Field names are the metric/config names users see."""

    model_name: str = "HPCM_Base"
    train_dataset: str | None = None     # None: the built-in sample images
    test_dataset: str | None = None
    lmbda: float = 0.013
    metric: str = "mse"
    epochs: int = 3000
    batch_size: int = 16
    learning_rate: float = 1e-4
    lr_schedule: str = "official"
    clip_max_norm: float = 1.0
    patch_size: int = 256
    steps_per_epoch: int | None = None   # None: one pass over the training set
    num_workers: int | None = None      # None: this process's CPUs minus one (a Ray trial: its CPUs)
    seed: int = 0
    init_weights: str | None = None      # start from these model weights (a plain state_dict), e.g. a warm start
    device: str = "auto"
    amp: str = "fp32"                    # "bf16": autocast (CUDA or CPU); noise, rates and regularizers stay fp32
    compile: bool = False
    deterministic: bool = False          # GPU runs bit-identical (deterministic kernels, no cuDNN autotuning); slower
    max_nonfinite_steps: int = 20        # non-finite steps are skipped; more than this many in a run is an error
    # Phase 1: intra-scale frequency truncation
    spectral_reg: bool = False
    tau_init: float = 0.05
    tau_final: float = 1.0
    truncation_epochs: int = 100
    phase1_mask: str = "full"            # "seed": the seed's mask, never the identity
    # Phase 2: inter-scale latent regularization
    phase2_reg: bool = False
    delta: float = 0.1
    phase2_aligner: str = "crossfit"     # who minimises the distance (see regularizers.inter_scale)
    distance: str = "l2"
    alignment: str = "subbands"
    phase2_sign: str = "repel"
    scale_latents: str = "model"         # "model": what the model declares (HPCM new, DHIC full); "new": what each scale adds (HPCM: new positions, DHIC: round(y - mu)); "full": decoded latents
    phase2_start_epoch: int | None = None  # None: end of Phase 1 when it is on, else 0
    # bookkeeping
    save_path: str = "runs/train"
    save_best: bool = True
    checkpoint_every: int = 1            # write the training checkpoint every N epochs (and after the last)
    scratch_dir: str | None = None       # a Ray trial's local working folder (default: the system temp dir)
    real_bpp: bool = True                # real rANS bitstreams on the validation set at the end

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"unknown config keys: {', '.join(unknown)}")
        return cls(**values).validated()

    @classmethod
    def from_checkpoint(cls, values: dict[str, Any]) -> "TrainConfig":
        """A config saved by an earlier version: a missing aligner means the old ``joint`` one,
        a missing Phase-1 mask the ``seed`` one, missing scale latents ``full``, bool amp → fp32/bf16."""
        old = {"phase2_aligner": "joint", "phase1_mask": "seed", "scale_latents": "full", **values}
        if isinstance(old.get("amp"), bool):
            old["amp"] = "bf16" if old["amp"] else "fp32"
        return cls.from_dict(old)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def phase1_on(self) -> bool:
        return self.spectral_reg and self.truncation_epochs > 0

    @property
    def phase2_on(self) -> bool:
        return self.phase2_reg and self.delta > 0

    @property
    def phase2_start(self) -> int:
        if self.phase2_start_epoch is not None:
            return self.phase2_start_epoch
        return self.truncation_epochs if self.phase1_on else 0

    def validated(self) -> "TrainConfig":
        """Return self, or raise :class:`InputError` naming the first bad value."""
        from .models import model_names                     # torch-free registries
        from .regularizers import ALIGNERS, DISTANCES, MASKS as PHASE1_MASKS

        low, high = LAMBDA_SCALE.get(self.metric, (0.0, math.inf))
        checks = [
            (self.model_name in model_names(), f"unknown model {self.model_name!r}; choose one of {', '.join(model_names())}"),
            (_finite(self.lmbda) and self.lmbda > 0, f"lambda must be > 0, got {self.lmbda}"),
            (self.metric in METRICS, f"metric must be one of {', '.join(METRICS)}, got {self.metric!r}"),
            (not _finite(self.lmbda) or low < self.lmbda < high,
             f"lambda {self.lmbda} is not on the {self.metric} scale (expected {low} < λ < {high}: "
             "MSE λs are ~0.002–0.05, MS-SSIM λs ~2.4–60)"),
            (self.amp in PRECISIONS, f"amp must be one of {', '.join(PRECISIONS)}, got {self.amp!r}"),
            (self.phase1_mask in PHASE1_MASKS, f"phase1 mask must be one of {', '.join(PHASE1_MASKS)}, got {self.phase1_mask!r}"),
            (self.phase2_aligner in ALIGNERS, f"phase2 aligner must be one of {', '.join(ALIGNERS)}, got {self.phase2_aligner!r}"),
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch size must be >= 1, got {self.batch_size}"),
            (_finite(self.learning_rate) and self.learning_rate > 0, f"learning rate must be > 0, got {self.learning_rate}"),
            (self.lr_schedule in LR_SCHEDULES, f"lr schedule must be one of {', '.join(LR_SCHEDULES)}"),
            (_finite(self.clip_max_norm) and self.clip_max_norm >= 0, f"clip max norm must be >= 0, got {self.clip_max_norm}"),
            (self.patch_size >= 64, f"patch size must be >= 64, got {self.patch_size}"),
            (self.steps_per_epoch is None or self.steps_per_epoch >= 1, f"steps per epoch must be >= 1, got {self.steps_per_epoch}"),
            (self.num_workers is None or self.num_workers >= 0, f"num workers must be >= 0, got {self.num_workers}"),
            (self.max_nonfinite_steps >= 0, f"max nonfinite steps must be >= 0, got {self.max_nonfinite_steps}"),
            (self.checkpoint_every >= 1, f"checkpoint every must be >= 1 epoch, got {self.checkpoint_every}"),
            (_finite(self.tau_init) and 0 < self.tau_init <= 1, f"tau_init must be in (0, 1], got {self.tau_init}"),
            (_finite(self.tau_final) and self.tau_init <= self.tau_final <= MAX_TAU,
             f"tau_final must be in [tau_init, sqrt(2)] = [{self.tau_init}, {MAX_TAU:.4f}], got {self.tau_final}"),
            (self.truncation_epochs >= 0, f"truncation epochs must be >= 0, got {self.truncation_epochs}"),
            (_finite(self.delta) and self.delta >= 0, f"delta must be >= 0, got {self.delta}"),
            (self.distance in DISTANCES, f"distance must be one of {', '.join(DISTANCES)}, got {self.distance!r}"),
            (self.alignment in ALIGNMENTS, f"alignment must be one of {', '.join(ALIGNMENTS)}, got {self.alignment!r}"),
            (self.phase2_sign in SIGNS, f"phase2 sign must be one of {', '.join(SIGNS)}, got {self.phase2_sign!r}"),
            (self.scale_latents in SCALE_LATENTS, f"scale latents must be one of {', '.join(SCALE_LATENTS)}"),
            (self.phase2_start_epoch is None or self.phase2_start_epoch >= 0,
             f"phase2 start epoch must be >= 0, got {self.phase2_start_epoch}"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(message)
        if self.phase1_on:
            check_phase1_length(self.truncation_epochs, self.epochs)
        return self


def check_phase1_length(truncation_epochs: int, epochs: int, hint: str = "--truncation-epochs") -> None:
    """Phase 1 (DCT truncation) must end before the run does, or nothing after it is trained:
    the one rule for ``trainable.train`` and ``search.run`` (whose ``hint`` names a space's keys)."""
    if truncation_epochs >= epochs:
        raise InputError(f"Phase 1 lasts {truncation_epochs} epochs (truncation_epochs) of a {epochs}-epoch run, "
                         f"so nothing after it is trained; set {hint} < {epochs}")


def _finite(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
