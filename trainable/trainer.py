"""The training core: ``train(config, report)``, one HPCM run with both regularizers.

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
from torch.utils.data import DataLoader
from tqdm import tqdm

from .checkpoint import load_file, model_state, save_atomic
from .config import TrainConfig
from .data import ImageFolder, resolve_dataset
from .errors import CheckpointError, TrainingError
from .loss import RateDistortionLoss, ms_ssim_db
from .lr_schedule import lr_factor
from .models import HPCM, create_model
from .regularizers import InterScaleRegularizer, TauSchedule, truncate

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


class Run:
    """State of one run: model, Phase 2 aligners, optimizer, progress."""

    def __init__(self, config: TrainConfig, device: torch.device):
        self.config, self.device = config, device
        self.model: HPCM = create_model(config.model_name).to(device)
        self.regularizer = (InterScaleRegularizer(
            self.model.cfg.M, delta=config.delta, alignment=config.alignment, distance=config.distance,
            sign=config.phase2_sign, scale_latents=config.scale_latents).to(device) if config.phase2_on else None)
        groups = [{"params": self.model.parameters()}]
        if self.regularizer is not None:   # the aligners learn with the model
            groups.append({"params": self.regularizer.parameters()})
        self.optimizer = torch.optim.Adam(groups, lr=config.learning_rate)
        self.epoch, self.global_step, self.best_val_loss = 0, 0, math.inf
        self.forward = torch.compile(self.model) if config.compile else self.model

    def state(self) -> dict:
        return {"format": CHECKPOINT_FORMAT, "model": self.model.state_dict(),
                "regularizer": self.regularizer.state_dict() if self.regularizer is not None else None,
                "optimizer": self.optimizer.state_dict(), "epoch": self.epoch, "global_step": self.global_step,
                "best_val_loss": self.best_val_loss, "config": self.config.to_dict()}

    def restore(self, path: str | Path) -> None:
        """Resume from our training checkpoint, or start from a plain state_dict's weights."""
        raw = load_file(path)
        if not (isinstance(raw, dict) and "optimizer" in raw):
            self.model.load_state_dict(model_state(raw, path))
            return
        if raw.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{path}: unsupported training checkpoint format {raw.get('format')!r}")
        saved = raw.get("config", {})
        for key in ("model_name", "phase2_reg", "alignment"):
            if saved.get(key) != getattr(self.config, key) and (key == "model_name" or self.config.phase2_on):
                raise CheckpointError(f"{path} was trained with {key}={saved.get(key)!r}, "
                                      f"this run has {key}={getattr(self.config, key)!r}")
        try:
            self.model.load_state_dict(raw["model"])
            if self.regularizer is not None and raw.get("regularizer") is not None:
                self.regularizer.load_state_dict(raw["regularizer"])
            self.optimizer.load_state_dict(raw["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{path} does not fit this run: {str(exc).splitlines()[0][:160]}") from None
        self.epoch, self.global_step = int(raw["epoch"]), int(raw["global_step"])
        self.best_val_loss = float(raw.get("best_val_loss", math.inf))


def _autocast(device: torch.device, enabled: bool):
    if device.type == "cuda" and enabled:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def _loader(dataset, config: TrainConfig, epoch_seed: int) -> DataLoader:
    return DataLoader(dataset, batch_size=config.batch_size, shuffle=True, drop_last=len(dataset) >= config.batch_size,
                      num_workers=config.num_workers, pin_memory=torch.cuda.is_available(),
                      generator=torch.Generator().manual_seed(epoch_seed), persistent_workers=False)


def _batches(loader: DataLoader, steps: int | None):
    """One pass, or exactly ``steps`` batches cycling through the loader."""
    if steps is None:
        yield from loader
        return
    done = 0
    while done < steps:
        for batch in loader:
            yield batch
            done += 1
            if done == steps:
                return


def train_epoch(run: Run, loader: DataLoader, criterion: RateDistortionLoss, tau: float | None,
                phase2: bool) -> dict[str, float]:
    """One epoch of RD training; Phase 1 low-passes the batch, Phase 2 adds the inter-scale term."""
    cfg, model = run.config, run.model
    model.train()
    sums: dict[str, torch.Tensor | float] = defaultdict(float)   # tensors: no device sync per step
    images, start = 0, time.perf_counter()
    params = [p for group in run.optimizer.param_groups for p in group["params"]]
    total = cfg.steps_per_epoch or len(loader)
    for x in tqdm(_batches(loader, cfg.steps_per_epoch), total=total, desc=f"epoch {run.epoch + 1}",
                  leave=False, disable=None):
        x = x.to(run.device, non_blocking=True)
        if tau is not None:
            x = truncate(x, tau)           # input and distortion target alike
        with _autocast(run.device, cfg.amp):
            out = run.forward(x, return_scale_latents=phase2)
        rd = criterion(out, x)
        loss = rd["loss"]
        if phase2:
            reg, pairs = run.regularizer(out["scale_latents"], out["scale_new_masks"])
            loss = loss + reg
            sums["inter_scale_reg"] += reg.detach() * len(x)
            for name, value in pairs.items():
                sums[f"inter_scale_{name}"] += value.detach() * len(x)
        run.global_step += 1
        if not torch.isfinite(loss):
            raise TrainingError(f"non-finite loss ({loss.item()}) at epoch {run.epoch + 1}, step {run.global_step}")
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.clip_max_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.clip_max_norm)
        run.optimizer.step()
        for key, value in rd.items():
            sums[key] += value.detach() * len(x)
        images += len(x)
    seconds = time.perf_counter() - start
    metrics = {f"train_{k}" if not k.startswith("inter_scale") else k: float(v) / images for k, v in sums.items()}
    metrics.update(epoch_seconds=seconds, images_per_s=images / seconds)
    metrics.setdefault("inter_scale_reg", 0.0)
    return metrics


@torch.no_grad()
def evaluate(model: HPCM, dataset: ImageFolder, criterion: RateDistortionLoss, device: torch.device) -> dict[str, float]:
    """Eval-mode RD on whole (padded) validation images, averaged over images."""
    model.eval()
    sums: dict[str, float] = defaultdict(float)
    for i in range(len(dataset)):
        x = dataset[i].unsqueeze(0).to(device)
        for key, value in criterion(model(x), x).items():
            sums[key] += value.item()
    metrics = {f"val_{k}": v / len(dataset) for k, v in sums.items()}
    if "val_ms_ssim" in metrics:
        metrics["val_ms_ssim_db"] = ms_ssim_db(metrics["val_ms_ssim"])
    return metrics


@torch.no_grad()
def real_bpp(model: HPCM, dataset: ImageFolder, device: torch.device) -> float:
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
    train_set = ImageFolder(resolve_dataset(cfg.train_dataset, "train"), cfg.patch_size, train=True)
    val_set = ImageFolder(resolve_dataset(cfg.test_dataset, "val"), train=False)
    train_set.verify()
    val_set.verify()

    seed_epoch(cfg.seed, -1)
    run = Run(cfg, device)
    if resume is not None:
        run.restore(resume)
    criterion = RateDistortionLoss(cfg.lmbda, cfg.metric, with_ms_ssim=True)
    phase1 = TauSchedule(cfg.tau_init, cfg.tau_final, cfg.truncation_epochs) if cfg.phase1_on else None
    metrics: dict = {}
    while run.epoch < cfg.epochs:
        epoch = run.epoch
        seed_epoch(cfg.seed, epoch)
        lr = cfg.learning_rate * lr_factor(cfg.lr_schedule, epoch, cfg.epochs)
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        tau = phase1.tau(epoch) if phase1 is not None and phase1.active(epoch) else None
        phase2 = run.regularizer is not None and epoch >= cfg.phase2_start
        loader = _loader(train_set, cfg, epoch_seed=(cfg.seed * 7919 + epoch) % 2**31)
        metrics = {"epoch": epoch + 1, "phase": "phase1_intra" if tau is not None else "baseline",
                   "tau": tau, "phase2_active": phase2, "lr": lr}
        metrics.update(train_epoch(run, loader, criterion, tau, phase2))
        metrics.update(evaluate(run.model, val_set, criterion, device))
        run.epoch, metrics["global_step"] = epoch + 1, run.global_step
        last = run.epoch == cfg.epochs
        if last and cfg.real_bpp:
            metrics["real_bpp"] = real_bpp(run.model, val_set, device)
        improved = metrics["val_loss"] < run.best_val_loss
        run.best_val_loss = min(run.best_val_loss, metrics["val_loss"])
        save_atomic(run.state(), save_dir / LAST)
        if cfg.save_best and improved:
            save_atomic(run.state(), save_dir / BEST)
        if last:
            export_inference(run.model, save_dir / FINAL)
        report(metrics, str(save_dir))
    return metrics


def export_inference(model: HPCM, path: Path) -> None:
    """Model weights only (no optimizer, no regularizer aligners), with entropy tables built."""
    model.eval().update()
    save_atomic(model.state_dict(), path)
