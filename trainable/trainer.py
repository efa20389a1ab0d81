"""The training core: ``train(config, report)``, one run of a registered model with both
regularizers; :class:`Run` is one model's state. :func:`train_together` advances any number
of runs one epoch in lockstep on one shared batch stream (``train`` with one run,
``curve.train_curve`` with one run per λ): every step each run gets the same batch, on its
own device and, on CUDA, its own stream, so a trial's λ models overlap on the GPU(s).

Every step is seeded from (seed, epoch, step) and crops come from the stream's own seeds,
so a run's numbers do not depend on the others trained beside it, nor on resuming.
A steady-state step makes no host sync: non-finite steps are skipped inside the fused
optimizer (``found_inf``) and counted on the device; the count is read once per epoch.

No logging framework and no Ray in here: the CLI (``trainable.train``) and the Ray Tune
adapter (``trainable.tune``) each pass their own ``report(metrics, checkpoint_dir)``,
called once per epoch (``checkpoint_dir`` None on epochs that write no checkpoint).
"""
from __future__ import annotations

import math
import random
import sys
import time
from collections import defaultdict
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from .checkpoint import load_file, load_weights, model_state, save_atomic
from .config import TrainConfig
from .data import ImageFolder, batch_stream, default_workers, read_rgb_uint8, resolve_dataset, to_float
from .device import describe, kernel_choice, no_autotuning, resolve_device
from .errors import CheckpointError, TrainingError
from .loss import RateDistortionLoss, ms_ssim_db
from .lr_schedule import lr_factor
from .models import create_model
from .models.interface import carried_latents, default_latents
from .models.ops import full_precision
from .regularizers import FrequencyTruncation, InterScaleRegularizer, TauSchedule, inter_scale_r2, pair_rows
from .regularizers.inter_scale import pair_names
from .warm_start import weights_for

Report = Callable[[dict, "str | None"], None]
LAST, BEST, FINAL = "checkpoint_last.pth.tar", "checkpoint_best.pth.tar", "model_final.pth.tar"
CHECKPOINT_FORMAT = 1

__all__ = ["BEST", "FINAL", "LAST", "Datasets", "Run", "evaluate", "real_bpp", "resolve_device", "seed_epoch",
           "train", "train_step", "train_together"]


def seed_epoch(seed: int, epoch: int, step: int = -1) -> None:
    """Seed every RNG from (seed, epoch, step): a step's noise is then the same whether the
    run was resumed or trained beside others, so RNG states need not be checkpointed."""
    s = ((seed * 1_000_003 + epoch) * 1_000_033 + step + 1) % 2**31 if step >= 0 else (seed * 1_000_003 + epoch) % 2**31
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


class Datasets:
    """Training crops and whole validation images, verified once (through the manifest);
    the validation images are decoded once (kept as uint8) and the training loader made once."""

    def __init__(self, config: TrainConfig):
        self.train = ImageFolder(resolve_dataset(config.train_dataset, "train"), config.patch_size, train=True)
        self.val = ImageFolder(resolve_dataset(config.test_dataset, "val"), train=False)
        self.train.verify()
        self.val.verify()
        self._val_images: list[torch.Tensor] | None = None

    def steps_per_epoch(self, config: TrainConfig) -> int:
        """Optimizer steps in one epoch: fixed, or one pass over the training set."""
        if config.steps_per_epoch:
            return config.steps_per_epoch
        n, b = len(self.train), config.batch_size
        return n // b if n >= b else 1

    @property
    def val_images(self) -> list[torch.Tensor]:
        """The validation images [1,3,H,W] uint8, decoded on first use."""
        if self._val_images is None:
            self._val_images = [read_rgb_uint8(f).unsqueeze(0) for f in self.val.files]
        return self._val_images

    def batches(self, config: TrainConfig, start_epoch: int, pin_memory: bool) -> Iterator[torch.Tensor]:
        """The training batches from ``start_epoch`` on (one loader for the whole run)."""
        workers = config.num_workers if config.num_workers is not None else default_workers()
        return batch_stream(self.train, config.batch_size, self.steps_per_epoch(config), config.seed, start_epoch,
                            workers, pin_memory)


class Run:
    """State of one run: model, Phase 1 schedule, Phase 2 term, optimizer, progress."""

    def __init__(self, config: TrainConfig, device: torch.device, steps_per_epoch: int):
        self.config, self.device, self.steps_per_epoch = config, device, steps_per_epoch
        self.model: nn.Module = create_model(config.model_name)
        if config.init_weights:
            load_weights(self.model, weights_for(config.init_weights, config.lmbda))
        self.model.to(device)
        self.scale_latents = default_latents(self.model, config.scale_latents)   # what Phase 2 reads
        self.phase1 = (FrequencyTruncation(TauSchedule(config.tau_init, config.tau_final,
                                                       config.truncation_epochs * steps_per_epoch),
                                           config.phase1_mask) if config.phase1_on else None)
        self.phase2 = (InterScaleRegularizer(
            self.model.scale_channels, delta=config.delta, aligner=config.phase2_aligner,
            alignment=config.alignment, distance=config.distance, sign=config.phase2_sign,
            scale_latents=self.scale_latents).to(device) if config.phase2_on else None)
        groups = [{"params": self.model.parameters()}]
        if self.phase2 is not None and any(True for _ in self.phase2.parameters()):
            groups.append({"params": self.phase2.parameters()})   # the aligners learn with the model
        # fused: one kernel per step, and it skips a step whose found_inf is set, without a host sync
        self.optimizer = torch.optim.Adam(groups, lr=config.learning_rate, fused=True)
        self.parameters = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.criterion = RateDistortionLoss(config.lmbda, config.metric)   # MS-SSIM per step only when trained on it
        self.val_criterion = RateDistortionLoss(config.lmbda, config.metric, with_ms_ssim=True)
        self.epoch, self.global_step, self.best_val_loss = 0, 0, math.inf
        self.nonfinite_steps = 0                      # skipped so far (checkpointed)
        self.forward = torch.compile(self.model) if config.compile else self.model
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    @property
    def done(self) -> bool:
        return self.epoch >= self.config.epochs

    def state(self) -> dict:
        return {"format": CHECKPOINT_FORMAT, "model": self.model.state_dict(),
                "regularizer": self.phase2.state_dict() if self.phase2 is not None else None,
                "optimizer": self.optimizer.state_dict(), "epoch": self.epoch, "global_step": self.global_step,
                "best_val_loss": self.best_val_loss, "nonfinite_steps": self.nonfinite_steps,
                "config": self.config.to_dict()}

    def restore(self, path: str | Path) -> None:
        """Resume from our training checkpoint, or start from a plain state_dict's weights."""
        raw = load_file(path)
        if not (isinstance(raw, dict) and "optimizer" in raw):
            self.model.load_state_dict(model_state(raw, path))
            return
        self.load_state(raw, str(path))

    def load_state(self, raw: dict, where: str) -> None:
        if raw.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{where}: unsupported training checkpoint format {raw.get('format')!r}")
        saved = TrainConfig.from_checkpoint(raw.get("config", {}))
        for key in ("model_name", "phase2_reg", "phase2_aligner", "alignment"):
            if getattr(saved, key) != getattr(self.config, key) and (key == "model_name" or self.config.phase2_on):
                raise CheckpointError(f"{where} was trained with {key}={getattr(saved, key)!r}, "
                                      f"this run has {key}={getattr(self.config, key)!r}")
        try:
            self.model.load_state_dict(raw["model"])
            if self.phase2 is not None and raw.get("regularizer") is not None:
                self.phase2.load_state_dict(raw["regularizer"])
            self.optimizer.load_state_dict(raw["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{where} does not fit this run: {str(exc).splitlines()[0][:160]}") from None
        self.epoch, self.global_step = int(raw["epoch"]), int(raw["global_step"])
        self.best_val_loss = float(raw.get("best_val_loss", math.inf))
        self.nonfinite_steps = int(raw.get("nonfinite_steps", 0))

    def begin_epoch(self) -> dict:
        """Set this epoch's learning rate; the epoch's leading metrics."""
        cfg, epoch = self.config, self.epoch
        lr = cfg.learning_rate * lr_factor(cfg.lr_schedule, epoch, cfg.epochs)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        phase1 = self.phase1 is not None and self.phase1.schedule.active(self.global_step)
        self.model.train()
        return {"epoch": epoch + 1, "phase": "phase1_intra" if phase1 else "baseline",
                "phase2_active": self.phase2_active, "lr": lr, "device": str(self.device)}

    @property
    def phase2_active(self) -> bool:
        return self.phase2 is not None and self.epoch >= self.config.phase2_start

    def check_nonfinite(self, skipped: int, steps: int) -> None:
        """Count this epoch's skipped steps; raise when the run is beyond saving."""
        self.nonfinite_steps += skipped
        limit = self.config.max_nonfinite_steps
        if skipped == steps or self.nonfinite_steps > limit:
            raise TrainingError(f"non-finite loss in {skipped} of {steps} steps of epoch {self.epoch + 1} "
                                f"({self.nonfinite_steps} skipped in this run, limit {limit}; step {self.global_step}): "
                                "lower the learning rate, or check the data")


def _autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def train_step(run: Run, x: torch.Tensor, phase2: bool) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
    """One optimizer step on batch ``x``: Phase 1 low-passes it (input and target alike) at
    this step's tau, Phase 2 adds the inter-scale term. Returns (RD terms, Phase 2 terms,
    a bool tensor: the step was skipped because its loss or gradient was not finite)."""
    if run.phase1 is not None:
        x = run.phase1.batch(x, run.global_step)
    # the regularizer's running statistics are restored if the step is skipped (they see the batch in forward)
    buffers = [b for b in run.phase2.buffers() if b.is_floating_point()] if phase2 else []
    saved = [b.clone() for b in buffers]
    with _autocast(run.device, run.config.amp):
        out = run.forward(x, return_scale_latents=phase2)
    rd = run.criterion(out, x)
    loss, extra = rd["loss"], {}
    if phase2:
        latents, masks = carried_latents(out, run.scale_latents)
        with full_precision(x.device):
            reg, pairs = run.phase2([t.float() for t in latents], masks)
        loss = loss + reg
        extra = {"inter_scale_reg": reg, **{f"inter_scale_epoch_{name}": d for name, d in pairs.items()}}
    run.global_step += 1
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    skipped = ~torch.isfinite(loss.detach())
    if run.config.clip_max_norm > 0:
        norm = torch.nn.utils.clip_grad_norm_(run.parameters, run.config.clip_max_norm)
        skipped = skipped | ~torch.isfinite(norm)
    run.optimizer.found_inf = skipped.float()    # read by the fused Adam kernel: no update, no step count
    run.optimizer.step()
    with torch.no_grad():
        for buffer, old in zip(buffers, saved):
            buffer.copy_(torch.where(skipped, old, buffer))
    return rd, extra, skipped


def _on_stream(run: Run):
    return torch.cuda.stream(run.stream) if run.stream is not None else nullcontext()


def step_together(runs: list[Run], x: torch.Tensor, epoch: int, step: int, phase2: list[bool],
                  sums: list[dict], taus: list) -> None:
    """One step of every run on batch ``x`` (one copy per device); adds to ``sums`` on the device."""
    on_device: dict[torch.device, torch.Tensor] = {}
    for k, run in enumerate(runs):
        if run.device not in on_device:
            on_device[run.device] = x.to(run.device, non_blocking=True)
        xd = on_device[run.device]
        if run.stream is not None:
            run.stream.wait_stream(torch.cuda.current_stream(run.device))
            xd.record_stream(run.stream)
        with _on_stream(run):
            seed_epoch(run.config.seed, epoch, step)
            if run.phase1 is not None:
                taus[k] = run.phase1.schedule.tau(run.global_step) or taus[k]
            rd, extra, bad = train_step(run, xd, phase2[k])
            for key, value in {**{f"train_{key}": v for key, v in rd.items()}, **extra}.items():
                sums[k][key] += torch.where(bad, 0.0, value.detach().float()) * len(x)
            sums[k]["images"] += (~bad).float() * len(x)
            sums[k]["skipped"] += bad.int()


def train_together(runs: list[Run], data: Datasets, batches: Iterator[torch.Tensor]) -> list[dict]:
    """One epoch of every run in lockstep on the same batches, then validation; each run's
    metrics (training terms averaged over the images of its non-skipped steps)."""
    steps = runs[0].steps_per_epoch
    epoch = runs[0].epoch
    heads = [run.begin_epoch() for run in runs]
    phase2 = [run.phase2_active for run in runs]
    sums: list[dict[str, torch.Tensor | float]] = [defaultdict(float) for _ in runs]   # tensors: no sync per step
    taus: list[float | None] = [None for _ in runs]
    start = time.perf_counter()
    for step in range(steps):
        x = next(batches)
        step_together(runs, x, epoch, step, phase2, sums, taus)
    for run in runs:
        if run.stream is not None:
            torch.cuda.current_stream(run.device).wait_stream(run.stream)
    seconds = time.perf_counter() - start
    out = []
    for k, run in enumerate(runs):
        skipped = int(sums[k].pop("skipped"))
        run.check_nonfinite(skipped, steps)
        images = float(sums[k].pop("images"))
        metrics = heads[k]
        metrics.update({key: float(v) / images for key, v in sums[k].items()})
        metrics.update(tau=taus[k], epoch_seconds=seconds, images_per_s=steps * len(x) / seconds,
                       nonfinite_steps=skipped)
        metrics.setdefault("inter_scale_reg", 0.0)
        if phase2[k]:   # the charge and an independent fresh estimate, on the same recent batches
            metrics.update(run.phase2.sampled())
        metrics.update(evaluate(run.model, data.val_images, run.val_criterion, run.device))
        run.epoch, metrics["global_step"] = epoch + 1, run.global_step
        if run.done and run.config.real_bpp:
            metrics["real_bpp"] = real_bpp(run.model, data.val_images, run.device)
        metrics["improved"] = metrics["val_loss"] < run.best_val_loss
        run.best_val_loss = min(run.best_val_loss, metrics["val_loss"])
        out.append(metrics)
    return out


@torch.no_grad()
@no_autotuning()
def evaluate(model: nn.Module, images: list[torch.Tensor], criterion: RateDistortionLoss,
             device: torch.device) -> dict[str, float]:
    """Eval-mode RD on whole (padded) validation images, averaged over images, and the
    held-out inter-scale R^2 of every adjacent scale pair (logged on and off alike).

    x_hat is clamped to [0, 1], as the decoder's output is: an unclamped eval forward let one
    DHIC_Tiny epoch report val MSE 3.6e6 (rounded latents outside what training noise
    covered), which then drove rd_score and ASHA."""
    model.eval()
    sums: dict[str, float] = defaultdict(float)
    rows = []
    for image in images:
        x = to_float(image.to(device))
        out = model(x, return_scale_latents=True)
        out["x_hat"] = out["x_hat"].clamp(0, 1)
        for key, value in criterion(out, x).items():
            sums[key] += value.item()
        m = model.coding_multiple
        covered = tuple(n / (math.ceil(n / m) * m) for n in x.shape[-2:])
        rows.append(pair_rows(*carried_latents(out, default_latents(model)), covered))
    metrics = {f"val_{k}": v / len(images) for k, v in sums.items()}
    if "val_ms_ssim" in metrics:
        metrics["val_ms_ssim_db"] = ms_ssim_db(metrics["val_ms_ssim"])
    metrics.update(inter_scale_r2(rows, pair_names(model.num_scales)))
    return metrics


@torch.no_grad()
@no_autotuning()
def real_bpp(model: nn.Module, images: list[torch.Tensor], device: torch.device) -> float:
    """Mean bits per pixel of real rANS bitstreams over the validation images."""
    model.eval().update()
    total = 0.0
    for image in images:
        x = to_float(image.to(device))
        bits = 8 * sum(len(s) for s in model.compress(x)["strings"])
        total += bits / (x.shape[2] * x.shape[3])
    return total / len(images)


def announce(runs: list[Run]) -> None:
    """Log each run's device (stderr)."""
    for device in dict.fromkeys(run.device for run in runs):
        print(f"hpcm-tune: training on {describe(device)}", file=sys.stderr)


def checkpoint_due(run: Run) -> bool:
    return run.done or run.epoch % run.config.checkpoint_every == 0


def train(config: TrainConfig, report: Report, resume: str | Path | None = None) -> dict:
    """Run (or resume) training; ``report(metrics, checkpoint_dir)`` once per epoch.

    Returns the last epoch's metrics. The checkpoint directory holds
    ``checkpoint_last.pth.tar``, written atomically every ``checkpoint_every`` epochs and
    after the last, before ``report`` (whose ``checkpoint_dir`` is None on other epochs).
    """
    cfg = config.validated()
    device = resolve_device(cfg.device)
    with kernel_choice([device], cfg.deterministic):
        return _train(cfg, device, report, resume)


def _train(cfg: TrainConfig, device: torch.device, report: Report, resume: str | Path | None) -> dict:
    save_dir = Path(cfg.save_path)
    data = Datasets(cfg)
    seed_epoch(cfg.seed, -1)
    run = Run(cfg, device, data.steps_per_epoch(cfg))
    if resume is not None:
        run.restore(resume)
    announce([run])
    batches = data.batches(cfg, run.epoch, pin_memory=device.type == "cuda")
    metrics: dict = {}
    while not run.done:
        (metrics,) = train_together([run], data, batches)
        written = checkpoint_due(run)
        if written:
            save_atomic(run.state(), save_dir / LAST)
        if metrics.pop("improved") and cfg.save_best:
            save_atomic(run.state(), save_dir / BEST)
        if run.done:
            export_inference(run.model, save_dir / FINAL)
        report(metrics, str(save_dir) if written else None)
    return metrics


def export_inference(model: nn.Module, path: Path) -> None:
    """Model weights only (no optimizer, no regularizer aligners), with entropy tables built."""
    model.eval().update()
    save_atomic(model.state_dict(), path)
