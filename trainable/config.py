"""``TrainConfig``: the one typed configuration that flows CLI → search → trainable."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from .errors import InputError
from .models import MODEL_NAMES

DISTANCES = ("l2", "l1", "cosine")
ALIGNMENTS = ("subbands", "ll")
SIGNS = ("repel", "attract")
SCALE_LATENTS = ("full", "new")
METRICS = ("mse", "ms-ssim")
LR_SCHEDULES = ("official", "cosine")
MAX_TAU = math.sqrt(2)  # the largest normalised DCT radius


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
    num_workers: int = 2
    seed: int = 0
    device: str = "auto"
    amp: bool = True                     # bf16 autocast on CUDA
    compile: bool = False
    # Phase 1: intra-scale frequency truncation
    spectral_reg: bool = False
    tau_init: float = 0.05
    tau_final: float = 1.0
    truncation_epochs: int = 100
    # Phase 2: inter-scale latent regularization
    phase2_reg: bool = False
    delta: float = 0.1
    distance: str = "l2"
    alignment: str = "subbands"
    phase2_sign: str = "repel"
    scale_latents: str = "full"
    phase2_start_epoch: int | None = None  # None: end of Phase 1 when it is on, else 0
    # bookkeeping
    save_path: str = "runs/train"
    save_best: bool = True
    real_bpp: bool = True                # real rANS bitstreams on the validation set at the end

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"unknown config keys: {', '.join(unknown)}")
        return cls(**values).validated()

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
        checks = [
            (self.model_name in MODEL_NAMES, f"unknown model {self.model_name!r}; choose one of {', '.join(MODEL_NAMES)}"),
            (_finite(self.lmbda) and self.lmbda > 0, f"lambda must be > 0, got {self.lmbda}"),
            (self.metric in METRICS, f"metric must be one of {', '.join(METRICS)}, got {self.metric!r}"),
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch size must be >= 1, got {self.batch_size}"),
            (_finite(self.learning_rate) and self.learning_rate > 0, f"learning rate must be > 0, got {self.learning_rate}"),
            (self.lr_schedule in LR_SCHEDULES, f"lr schedule must be one of {', '.join(LR_SCHEDULES)}"),
            (_finite(self.clip_max_norm) and self.clip_max_norm >= 0, f"clip max norm must be >= 0, got {self.clip_max_norm}"),
            (self.patch_size >= 64, f"patch size must be >= 64, got {self.patch_size}"),
            (self.steps_per_epoch is None or self.steps_per_epoch >= 1, f"steps per epoch must be >= 1, got {self.steps_per_epoch}"),
            (self.num_workers >= 0, f"num workers must be >= 0, got {self.num_workers}"),
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
        return self


def _finite(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
