"""The training core: ``train(config, report)``, one run of a registered model with both
regularizers; :class:`Run` is one model's state, advanced one epoch at a time (also by
``curve.train_curve``, which trains one configuration at every λ in lockstep).

No logging framework and no Ray in here: the CLI (``trainable.train``) and the Ray Tune
adapter (``trainable.tune``) each pass their own ``report(metrics, checkpoint_dir)``,
called once per epoch after the epoch's checkpoint is on disk.
"""
from __future__ import annotations

import math
import random
import time
from collections import defaultdict
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from .checkpoint import load_file, load_weights, model_state, save_atomic
from .config import TrainConfig
from .data import ImageFolder, resolve_dataset
from .errors import CheckpointError, TrainingError
from .loss import RateDistortionLoss, ms_ssim_db
from .lr_schedule import lr_factor
from .models import create_model
from .models.interface import carried_latents
from .regularizers import FrequencyTruncation, InterScaleRegularizer, TauSchedule, inter_scale_r2, pair_rows
from .regularizers.inter_scale import pair_names

Report = Callable[[dict, "str | None"], None]
LAST, BEST, FINAL = "checkpoint_last.pth.tar", "checkpoint_best.pth.tar", "model_final.pth.tar"
CHECKPOINT_FORMAT = 1


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError("device cuda requested but no CUDA device is available")
    return device


def seed_epoch(seed: int, epoch: int) -> None:
    """Seed every RNG from (seed, epoch): an epoch's crops and noise are then the same
    whether the run was resumed or not, so RNG states need not be checkpointed."""
    s = (seed * 1_000_003 + epoch) % 2**31
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


class Datasets:
    """Training crops and whole validation images, verified once (through the manifest)."""

    def __init__(self, config: TrainConfig):
        self.train = ImageFolder(resolve_dataset(config.train_dataset, "train"), config.patch_size, train=True)
        self.val = ImageFolder(resolve_dataset(config.test_dataset, "val"), train=False)
        self.train.verify()
        self.val.verify()

    def steps_per_epoch(self, config: TrainConfig) -> int:
        """Optimizer steps in one epoch: fixed, or one pass over the training set."""
        if config.steps_per_epoch:
            return config.steps_per_epoch
        n, b = len(self.train), config.batch_size
        return n // b if n >= b else 1


class Run:
    """State of one run: model, Phase 1 schedule, Phase 2 term, optimizer, progress."""

    def __init__(self, config: TrainConfig, device: torch.device, steps_per_epoch: int):
        self.config, self.device, self.steps_per_epoch = config, device, steps_per_epoch
        self.model: nn.Module = create_model(config.model_name)
        if config.init_weights:
            load_weights(self.model, config.init_weights)
        self.model.to(device)
        self.phase1 = (FrequencyTruncation(TauSchedule(config.tau_init, config.tau_final,
                                                       config.truncation_epochs * steps_per_epoch),
                                           config.phase1_mask) if config.phase1_on else None)
        self.phase2 = (InterScaleRegularizer(
            self.model.scale_channels, delta=config.delta, aligner=config.phase2_aligner,
            alignment=config.alignment, distance=config.distance, sign=config.phase2_sign,
            scale_latents=config.scale_latents).to(device) if config.phase2_on else None)
        groups = [{"params": self.model.parameters()}]
        if self.phase2 is not None and any(True for _ in self.phase2.parameters()):
            groups.append({"params": self.phase2.parameters()})   # the aligners learn with the model
        self.optimizer = torch.optim.Adam(groups, lr=config.learning_rate)
        self.parameters = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.criterion = RateDistortionLoss(config.lmbda, config.metric, with_ms_ssim=True)
        self.epoch, self.global_step, self.best_val_loss = 0, 0, math.inf
        self.forward = torch.compile(self.model) if config.compile else self.model

    @property
    def done(self) -> bool:
        return self.epoch >= self.config.epochs

    def state(self) -> dict:
        return {"format": CHECKPOINT_FORMAT, "model": self.model.state_dict(),
                "regularizer": self.phase2.state_dict() if self.phase2 is not None else None,
                "optimizer": self.optimizer.state_dict(), "epoch": self.epoch, "global_step": self.global_step,
                "best_val_loss": self.best_val_loss, "config": self.config.to_dict()}

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

    def run_epoch(self, data: Datasets) -> dict:
        """Train one epoch, validate, advance: the epoch's metrics (real bpp after the last)."""
        cfg, epoch = self.config, self.epoch
        seed_epoch(cfg.seed, epoch)
        lr = cfg.learning_rate * lr_factor(cfg.lr_schedule, epoch, cfg.epochs)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        phase1 = self.phase1 is not None and self.phase1.schedule.active(self.global_step)
        phase2 = self.phase2 is not None and epoch >= cfg.phase2_start
        loader = _loader(data.train, cfg, epoch_seed=(cfg.seed * 7919 + epoch) % 2**31)
        metrics = {"epoch": epoch + 1, "phase": "phase1_intra" if phase1 else "baseline",
                   "phase2_active": phase2, "lr": lr}
        metrics.update(train_epoch(self, loader, phase2))
        metrics.update(evaluate(self.model, data.val, self.criterion, self.device))
        self.epoch, metrics["global_step"] = epoch + 1, self.global_step
        if self.done and cfg.real_bpp:
            metrics["real_bpp"] = real_bpp(self.model, data.val, self.device)
        metrics["improved"] = metrics["val_loss"] < self.best_val_loss
        self.best_val_loss = min(self.best_val_loss, metrics["val_loss"])
        return metrics


def _autocast(device: torch.device, precision: str):
    if device.type == "cuda" and precision == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def _loader(dataset, config: TrainConfig, epoch_seed: int) -> DataLoader:
    return DataLoader(dataset, batch_size=config.batch_size, shuffle=True, drop_last=len(dataset) >= config.batch_size,
                      num_workers=config.num_workers, pin_memory=torch.cuda.is_available(),
                      generator=torch.Generator().manual_seed(epoch_seed), persistent_workers=False)


def _batches(loader: DataLoader, steps: int):
    """Exactly ``steps`` batches, cycling through the loader."""
    done = 0
    while done < steps:
        for batch in loader:
            yield batch
            done += 1
            if done == steps:
                return


def train_step(run: Run, x: torch.Tensor, phase2: bool) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """One optimizer step on batch ``x``: Phase 1 low-passes it (input and target alike) at
    this step's tau, Phase 2 adds the inter-scale term. Returns (RD terms, Phase 2 terms)."""
    if run.phase1 is not None:
        x = run.phase1.batch(x, run.global_step)
    with _autocast(run.device, run.config.amp):
        out = run.forward(x, return_scale_latents=phase2)
    rd = run.criterion(out, x)
    loss, extra = rd["loss"], {}
    if phase2:
        reg, pairs = run.phase2(*carried_latents(out, run.config.scale_latents))
        loss = loss + reg
        extra = {"inter_scale_reg": reg, **{f"inter_scale_{name}": d for name, d in pairs.items()}}
    run.global_step += 1
    if not torch.isfinite(loss):
        raise TrainingError(f"non-finite loss ({loss.item()}) at epoch {run.epoch + 1}, step {run.global_step}")
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if run.config.clip_max_norm > 0:
        torch.nn.utils.clip_grad_norm_(run.parameters, run.config.clip_max_norm)
    run.optimizer.step()
    return rd, extra


def train_epoch(run: Run, loader: DataLoader, phase2: bool) -> dict[str, float]:
    """One epoch of RD training; metrics are averages over its images."""
    run.model.train()
    sums: dict[str, torch.Tensor | float] = defaultdict(float)   # tensors: no device sync per step
    images, start, tau = 0, time.perf_counter(), None
    for x in tqdm(_batches(loader, run.steps_per_epoch), total=run.steps_per_epoch, desc=f"epoch {run.epoch + 1}",
                  leave=False, disable=None):
        if run.phase1 is not None:
            tau = run.phase1.schedule.tau(run.global_step) or tau
        rd, extra = train_step(run, x.to(run.device, non_blocking=True), phase2)
        for key, value in rd.items():
            sums[f"train_{key}"] += value.detach() * len(x)
        for key, value in extra.items():
            sums[key] += value.detach() * len(x)
        images += len(x)
    seconds = time.perf_counter() - start
    metrics = {k: float(v) / images for k, v in sums.items()}
    metrics.update(tau=tau, epoch_seconds=seconds, images_per_s=images / seconds)
    metrics.setdefault("inter_scale_reg", 0.0)
    if phase2:   # what a predictor fitted afresh on the epoch's last batch scores, next to the charge
        metrics.update({f"inter_scale_fresh_{name}": d for name, d in run.phase2.fresh().items()})
    return metrics


@torch.no_grad()
def evaluate(model: nn.Module, dataset: ImageFolder, criterion: RateDistortionLoss, device: torch.device) -> dict[str, float]:
    """Eval-mode RD on whole (padded) validation images, averaged over images, and the
    held-out inter-scale R^2 of every adjacent scale pair (logged on and off alike).

    x_hat is clamped to [0, 1], as the decoder's output is: an unclamped eval forward let one
    DHIC_Tiny epoch report val MSE 3.6e6 (rounded latents outside what training noise
    covered), which then drove rd_score and ASHA."""
    model.eval()
    sums: dict[str, float] = defaultdict(float)
    rows = []
    for i in range(len(dataset)):
        x = dataset[i].unsqueeze(0).to(device)
        out = model(x, return_scale_latents=True)
        out["x_hat"] = out["x_hat"].clamp(0, 1)
        for key, value in criterion(out, x).items():
            sums[key] += value.item()
        m = model.coding_multiple
        covered = tuple(n / (math.ceil(n / m) * m) for n in x.shape[-2:])
        rows.append(pair_rows(*carried_latents(out, "new"), covered))
    metrics = {f"val_{k}": v / len(dataset) for k, v in sums.items()}
    if "val_ms_ssim" in metrics:
        metrics["val_ms_ssim_db"] = ms_ssim_db(metrics["val_ms_ssim"])
    metrics.update(inter_scale_r2(rows, pair_names(model.num_scales)))
    return metrics


@torch.no_grad()
def real_bpp(model: nn.Module, dataset: ImageFolder, device: torch.device) -> float:
    """Mean bits per pixel of real rANS bitstreams over the validation images."""
    model.eval().update()
    total = 0.0
    for i in range(len(dataset)):
        x = dataset[i].unsqueeze(0).to(device)
        bits = 8 * sum(len(s) for s in model.compress(x)["strings"])
        total += bits / (x.shape[2] * x.shape[3])
    return total / len(dataset)


def train(config: TrainConfig, report: Report, resume: str | Path | None = None) -> dict:
    """Run (or resume) training; ``report(metrics, checkpoint_dir)`` once per epoch.

    Returns the last epoch's metrics. The checkpoint directory holds
    ``checkpoint_last.pth.tar`` (written atomically before ``report`` is called).
    """
    cfg = config.validated()
    device = resolve_device(cfg.device)
    save_dir = Path(cfg.save_path)
    data = Datasets(cfg)
    seed_epoch(cfg.seed, -1)
    run = Run(cfg, device, data.steps_per_epoch(cfg))
    if resume is not None:
        run.restore(resume)
    metrics: dict = {}
    while not run.done:
        metrics = run.run_epoch(data)
        save_atomic(run.state(), save_dir / LAST)
        if metrics.pop("improved") and cfg.save_best:
            save_atomic(run.state(), save_dir / BEST)
        if run.done:
            export_inference(run.model, save_dir / FINAL)
        report(metrics, str(save_dir))
    return metrics


def export_inference(model: nn.Module, path: Path) -> None:
    """Model weights only (no optimizer, no regularizer aligners), with entropy tables built."""
    model.eval().update()
    save_atomic(model.state_dict(), path)
