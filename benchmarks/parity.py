"""The comparisons ``benchmarks.gpu_check`` judges a GPU by, each testable on the CPU.

* :func:`first_backward`: loss and every parameter's gradient after one forward and backward
  from fixed weights, batch and training noise, with no optimizer step: Adam normalises a
  gradient's size away, so weights after a step cannot show a backward that is 1.5x wrong.
* :func:`gradient_parity`: per tensor, ||g_ref - g|| / ||g_ref|| (relative L2), and the loss's
  relative difference, against thresholds.
* :func:`lockstep_vs_alone`: K λ models stepped together against each stepped alone.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from contextlib import contextmanager

import torch

from trainable.config import TrainConfig
from trainable.models import hpcm as hpcm_module
from trainable.trainer import Run, seed_epoch, step_together

GRADIENT_RTOL = 1e-2        # per tensor; a 1.5x wrong layer reads 0.5
GRADIENT_FLOOR = 1e-6       # x the whole gradient's norm: below it a tensor's gradient is rounding noise
LOSS_RTOL = 1e-4
LOCKSTEP_RTOL = 1e-4        # losses and per-tensor weights, K together vs alone
GRADIENT_THRESHOLD = (f"every gradient's relative L2 <= {GRADIENT_RTOL:g} (norms floored at {GRADIENT_FLOOR:g} x the "
                      f"whole gradient's), loss relative difference <= {LOSS_RTOL:g}")
LOCKSTEP_THRESHOLD = f"losses and weights relative <= {LOCKSTEP_RTOL:g}"


def smooth_batch(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    """A smooth-plus-texture batch in [0, 1] (CPU), the same for every backend."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    base = torch.stack([xx, yy, (xx + yy) / 2]) * torch.rand(batch, 3, 1, 1, generator=g)
    return (base + 0.1 * torch.rand(batch, 3, size, size, generator=g)).clamp(0, 1)


@contextmanager
def host_noise(seed: int):
    """HPCM's training noise drawn on the host from ``seed`` then moved: the same on every device."""
    g = torch.Generator().manual_seed(seed)
    original = hpcm_module.uniform_noise
    hpcm_module.uniform_noise = lambda t: torch.empty(t.shape, dtype=torch.float64).uniform_(
        -0.5, 0.5, generator=g).to(t.device, t.dtype)
    try:
        yield
    finally:
        hpcm_module.uniform_noise = original


def first_backward(cfg: TrainConfig, device: str, x: torch.Tensor,
                   prepare: Callable[[torch.nn.Module], None] | None = None) -> tuple[float, dict[str, torch.Tensor]]:
    """(loss, gradients on the host) of one forward and backward of ``cfg``'s model on ``device``,
    from the weights seed ``cfg.seed`` gives; ``prepare(model)`` may change the model first (a
    memory format, or a deliberately wrong backward)."""
    seed_epoch(cfg.seed, -1)
    run = Run(cfg, torch.device(device), steps_per_epoch=1)
    model = run.model
    if prepare is not None:
        prepare(model)
    xd = x.to(device)
    with host_noise(cfg.seed):
        loss = run.criterion(model(xd), xd)["loss"]
    loss.backward()
    grads = {name: p.grad.detach().double().cpu() for name, p in model.named_parameters() if p.grad is not None}
    return float(loss.detach()), grads


def relative_l2(reference: torch.Tensor, other: torch.Tensor, floor: float = 0.0) -> float:
    """||reference - other|| / max(||reference||, floor) (0 when both are 0, inf when only the reference is)."""
    diff, norm = float((reference - other).norm()), max(float(reference.norm()), floor)
    return diff / norm if norm > 0 else (0.0 if diff == 0 else math.inf)


def gradient_parity(reference: tuple[float, dict[str, torch.Tensor]], other: tuple[float, dict[str, torch.Tensor]],
                    rtol: float = GRADIENT_RTOL, loss_rtol: float = LOSS_RTOL) -> dict:
    """Judge ``other`` (loss, gradients) against ``reference`` (:data:`GRADIENT_THRESHOLD` at the defaults)."""
    (loss_a, grads_a), (loss_b, grads_b) = reference, other
    if set(grads_a) != set(grads_b):
        return {"status": "fail", "missing": sorted(set(grads_a) ^ set(grads_b))[:5]}
    # a gradient that is 0 in exact arithmetic (an attention key's bias: softmax ignores it) is
    # rounding noise of ~1e-12; it is measured against a floor relative to the whole gradient
    floor = GRADIENT_FLOOR * float(torch.cat([g.flatten() for g in grads_a.values()]).norm())
    per_tensor = {name: relative_l2(grads_a[name], grads_b[name], floor) for name in grads_a}
    worst = max(per_tensor, key=per_tensor.get)
    loss_diff = abs(loss_a - loss_b) / abs(loss_a)
    ok = per_tensor[worst] <= rtol and loss_diff <= loss_rtol
    return {"status": "pass" if ok else "fail", "worst_tensor": worst, "worst_relative_l2": per_tensor[worst], "loss_relative_diff": loss_diff,
            "tensors_over": sum(v > rtol for v in per_tensor.values()), "tensors": len(per_tensor)}


def train_lockstep(cfgs: list[TrainConfig], devices: list[str], batches: list[torch.Tensor]) -> list[tuple[list, dict]]:
    """Step ``cfgs`` together (one lockstep) on ``batches``: each run's losses and final weights."""
    runs = []
    for cfg, device in zip(cfgs, devices):
        seed_epoch(cfg.seed, -1)
        runs.append(Run(cfg, torch.device(device), steps_per_epoch=len(batches)))
    losses: list[list[float]] = [[] for _ in runs]
    for step, x in enumerate(batches):
        sums = [defaultdict(float) for _ in runs]
        step_together(runs, x, 0, step, [False] * len(runs), sums, [None] * len(runs))
        for k, s in enumerate(sums):
            losses[k].append(float(s["train_loss"]) / len(x))
    return [(loss, {n: v.detach().double().cpu() for n, v in run.model.state_dict().items()
                    if v.is_floating_point()}) for loss, run in zip(losses, runs)]


def lockstep_vs_alone(cfgs: list[TrainConfig], devices: list[str], batches: list[torch.Tensor],
                      rtol: float = LOCKSTEP_RTOL) -> dict:
    """K λ models stepped together (``devices``, streams on CUDA) against each stepped alone."""
    together = train_lockstep(cfgs, devices, batches)
    worst_loss = worst_weight = 0.0
    for cfg, device, (losses, weights) in zip(cfgs, devices, together):
        ((alone_losses, alone_weights),) = train_lockstep([cfg], [device], batches)
        worst_loss = max([worst_loss] + [abs(a - b) / abs(a) for a, b in zip(alone_losses, losses)])
        worst_weight = max([worst_weight] + [relative_l2(alone_weights[n], weights[n]) for n in weights])
    ok = worst_loss <= rtol and worst_weight <= rtol
    return {"status": "pass" if ok else "fail", "models": len(cfgs), "steps": len(batches), "worst_loss_relative_diff": worst_loss,
            "worst_weight_relative_l2": worst_weight}
