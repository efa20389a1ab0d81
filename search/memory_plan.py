"""Will a trial's λ models fit on a GPU? Reserved memory per GPU, estimated before the search.

K λ models on one GPU each run on their own CUDA stream, and the caching allocator does not share
blocks between streams: what a GPU reserves is the sum of its models' peaks. One model's peak:
    weights, gradients and Adam's two moments (16 bytes a parameter, fp32)
  + what backward keeps: batch x (patch / 256)² x the bytes a 256² crop keeps
    (``benchmarks.memory --activations``, fp32 or bf16; device-independent)
  x TRANSIENT for backward's temporary buffers and the allocator's rounding (an estimate).
Plus, once per GPU, the CUDA context and a validation forward of the largest validation image
(no gradient: costed at VALIDATION_SHARE of what a training crop keeps per pixel, an estimate).
``benchmarks.gpu_check`` measures ``max_memory_reserved``: trust it over this.
"""
from __future__ import annotations

from dataclasses import dataclass

from trainable.errors import InputError

from .loader_plan import models_per_gpu
from .measured import measured
from .plan import Plan

GIB = 2**30
BYTES_PER_PARAMETER = 16          # fp32 weight, gradient and two Adam moments
TRANSIENT = 1.25
VALIDATION_SHARE = 0.25
CUDA_CONTEXT_GIB = 0.5
DEFAULT_GPU_GIB = 80.0            # an 80 GB A100 / H100


@dataclass(frozen=True)
class MemoryPlan:
    model: str
    models_per_gpu: int
    model_gib: float
    validation_gib: float
    gpu_gib: float
    gpu_source: str

    @property
    def total_gib(self) -> float:
        return self.models_per_gpu * self.model_gib + self.validation_gib + CUDA_CONTEXT_GIB

    def line(self) -> str:
        return (f"  memory per GPU ({self.model}): about {self.total_gib:.1f} GiB reserved ({self.models_per_gpu} λ "
                f"models x {self.model_gib:.1f} GiB + validation {self.validation_gib:.1f} GiB + CUDA context "
                f"{CUDA_CONTEXT_GIB:g} GiB; estimate, docs/gpus.md) of {self.gpu_gib:.0f} GiB ({self.gpu_source})")

    def check(self) -> None:
        if self.total_gib > self.gpu_gib:
            raise InputError(f"{self.model}: about {self.total_gib:.0f} GiB per GPU ({self.models_per_gpu} λ models x "
                             f"{self.model_gib:.1f} GiB + validation) does not fit {self.gpu_gib:.0f} GiB; raise "
                             "--gpus-per-trial, use --amp bf16, or train fewer λ (--lambdas)")


def gpu_memory_gib(flag: float | None) -> tuple[float, str]:
    """The GPU's memory: ``--gpu-memory-gib``, else this machine's first GPU, else the default."""
    if flag is not None:
        if not flag > 0:
            raise InputError(f"--gpu-memory-gib must be > 0, got {flag}")
        return flag, "--gpu-memory-gib"
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return props.total_memory / GIB, f"this machine's {props.name}"
    return DEFAULT_GPU_GIB, "default: an 80 GB GPU; --gpu-memory-gib for yours"


def model_gib(model: str, parameters: int, batch: int, patch: int, amp: str) -> float:
    """One λ model's estimated peak while it trains (weights, optimizer state, backward's tensors)."""
    crop = measured("training_memory", model, f"saved_gib_per_crop_{amp}")
    return parameters * BYTES_PER_PARAMETER / GIB + TRANSIENT * batch * (patch / 256) ** 2 * crop


def memory_plan(plan: Plan, model: str, parameters: int, val_max_pixels: int, gpu: tuple[float, str]) -> MemoryPlan:
    base = plan.base
    validation = VALIDATION_SHARE * val_max_pixels * measured("training_memory", model, "saved_gib_per_crop_fp32") / 256**2
    return MemoryPlan(model, models_per_gpu(len(plan.lambdas), plan.config.gpus_per_trial),
                      model_gib(model, parameters, base.batch_size, base.patch_size, base.amp), validation, *gpu)
