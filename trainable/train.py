"""``python -m trainable.train``: one training run, with the earlier ``train.py``'s flags.

Writes SAVE_PATH/metrics.jsonl (one JSON object per epoch), checkpoint_last.pth.tar,
checkpoint_best.pth.tar and model_final.pth.tar (inference weights only). W&B logging
with ``--wandb`` runs offline unless WANDB_MODE or ``--wandb-mode online`` says otherwise.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from .cli import OneLineParser, registry_name, run_cli
from .config import ALIGNMENTS, LR_SCHEDULES, METRICS, PRECISIONS, SCALE_LATENTS, SIGNS, TrainConfig
from .models import model_names
from .paths import check_device, check_output_folder


def _registry(name: str):
    """Names of a regularizer registry (torch), read only when a value is checked."""
    def load():
        from . import regularizers

        return getattr(regularizers, name)
    return registry_name(load)

# metrics.jsonl name -> the earlier system's W&B name
WANDB_NAMES = {"tau": "spectral/tau", "phase": "spectral/phase", "inter_scale_reg": "spectral/inter_scale_reg",
               "train_loss": "train/loss", "train_bpp": "train/bpp_loss", "train_psnr": "train/psnr"}


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = OneLineParser(prog="python -m trainable.train", description=__doc__,
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    a("--model_name", default=d.model_name, choices=model_names(), help="registered model")
    a("--train_dataset", default=None, help="training image folder (default: built-in sample images)")
    a("--test_dataset", default=None, help="validation image folder (default: built-in sample images)")
    a("--lambda", dest="lmbda", type=float, default=d.lmbda, help="rate-distortion trade-off λ")
    a("--metric", default=d.metric, choices=METRICS, help="distortion: λ·255²·MSE or λ·(1−MS-SSIM)")
    a("--epochs", type=int, default=d.epochs, help="number of epochs")
    a("--batch-size", type=int, default=d.batch_size, help="training batch size")
    a("--learning-rate", type=float, default=d.learning_rate, help="base learning rate (Adam)")
    a("--lr-schedule", default=d.lr_schedule, choices=LR_SCHEDULES, help="official step decay or cosine")
    a("--clip-max-norm", type=float, default=d.clip_max_norm, help="gradient clipping norm (0: off)")
    a("--patch-size", type=int, default=d.patch_size, help="training crop size")
    a("--steps-per-epoch", type=int, default=None, help="fixed epoch length in steps (default: one pass)")
    a("--num-workers", type=int, default=d.num_workers, help="data loader workers (default: CPUs minus one)")
    a("--seed", type=int, default=d.seed, help="random seed")
    a("--device", default=d.device, help="auto | cpu | cuda | cuda:N")
    a("--amp", default=d.amp, choices=PRECISIONS,
      help="bf16: autocast (CUDA, or CPU); noise, rounding, rates and regularizers stay fp32")
    a("--compile", action="store_true", help="torch.compile the model")
    a("--deterministic", action="store_true", help="bit-identical GPU runs: deterministic kernels, no cuDNN autotuning")
    a("--max-nonfinite-steps", type=int, default=d.max_nonfinite_steps,
      help="non-finite steps are skipped; more than this many in the run stop it")
    a("--checkpoint-every", type=int, default=d.checkpoint_every, help="write checkpoint_last every N epochs")
    a("--save_path", default=d.save_path, help="output directory")
    a("--log_dir", default=None, help="W&B directory (default: SAVE_PATH)")
    a("--init-weights", default=None, help="start from these model weights (plain state_dict), not a resume")
    a("--checkpoint", default=None, help="resume from a training checkpoint, or start from a plain state_dict")
    a("--resume", action="store_true", help="resume from SAVE_PATH's last training checkpoint if it exists")
    g = p.add_argument_group("Phase 1: intra-scale frequency truncation")
    g.add_argument("--spectral-reg", action="store_true", help="low-pass training images in the DCT domain")
    g.add_argument("--tau-init", type=float, default=d.tau_init, help="initial cut-off radius, in (0, 1]")
    g.add_argument("--tau-final", type=float, default=d.tau_final, help="final cut-off radius")
    g.add_argument("--truncation-epochs", type=int, default=d.truncation_epochs,
                   help="Phase 1 length in epochs (tau moves every optimizer step)")
    g.add_argument("--phase1-mask", default=d.phase1_mask, type=_registry("MASKS"), metavar="MASK",
                   help="full: ends on the identity (the whole spectrum); seed: the seed's mask, never the identity")
    g = p.add_argument_group("Phase 2: inter-scale latent regularization")
    g.add_argument("--phase2-reg", action="store_true", help="add the inter-scale similarity term")
    g.add_argument("--delta", type=float, default=d.delta, help="weight δ of the term (0: off)")
    g.add_argument("--phase2-aligner", default=d.phase2_aligner, type=_registry("ALIGNERS"), metavar="ALIGNER",
                   help="crossfit (default): a best linear predictor fitted afresh on every batch (blocked folds), "
                        "D = 1 - held-out R²; adversarial: a moving-average predictor (stale: the encoder "
                        "outruns it); ridge: closed-form per batch; joint: the seed's (degenerate under repel)")
    g.add_argument("--distance", default=d.distance, type=_registry("DISTANCES"), metavar="DISTANCE",
                   help="a registered distance between scales")
    g.add_argument("--alignment", default=d.alignment, choices=ALIGNMENTS,
                   help="Haar sub-bands of the finer scale fed to the 1x1 aligner")
    g.add_argument("--phase2-sign", default=d.phase2_sign, choices=SIGNS,
                   help="repel: −δ·d (the paper's notation), attract: +δ·d")
    g.add_argument("--scale-latents", default=d.scale_latents, choices=SCALE_LATENTS,
                   help="model: the model's choice (HPCM new, DHIC full); new: what each scale adds (HPCM: its new positions, DHIC: the coded residuals); full: whole latents")
    g.add_argument("--phase2-start-epoch", type=int, default=None,
                   help="first Phase 2 epoch (default: end of Phase 1 if on, else 0)")
    g = p.add_argument_group("logging")
    g.add_argument("--wandb", action="store_true", help="log to Weights & Biases")
    g.add_argument("--wandb-mode", default=None, choices=["offline", "online"],
                   help="default: $WANDB_MODE, else offline")
    g.add_argument("--wandb-project", default="hpcm-tune")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    keys = set(TrainConfig.__dataclass_fields__)
    return TrainConfig.from_dict({k: v for k, v in vars(args).items() if k in keys})


class MetricsLog:
    """metrics.jsonl writer; the first report of a (resumed) run drops the lines of
    epochs from there on, so re-run epochs are not listed twice."""

    def __init__(self, path: Path):
        self.path, self.started = path, False

    def __call__(self, metrics: dict) -> None:
        if not self.started:
            lines = self.path.read_text().splitlines() if self.path.exists() else []
            kept = [line for line in lines if (_epoch_of(line) or metrics["epoch"]) < metrics["epoch"]]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("".join(line + "\n" for line in kept))
            self.started = True
        with self.path.open("a") as f:
            f.write(json.dumps(metrics) + "\n")


def _epoch_of(line: str) -> int | None:
    try:
        return int(json.loads(line)["epoch"])
    except (ValueError, KeyError, TypeError):
        return None


def _wandb_logger(args, config: TrainConfig):
    import wandb

    mode = args.wandb_mode or os.environ.get("WANDB_MODE") or "offline"
    run = wandb.init(project=args.wandb_project, mode=mode, dir=args.log_dir or config.save_path,
                     config=config.to_dict(), resume="allow")

    def log(metrics: dict) -> None:
        run.log({WANDB_NAMES.get(k, k if "/" in k else f"metrics/{k}"): v for k, v in metrics.items()
                 if v is not None}, step=metrics["epoch"])
    return log, run


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    from .trainer import LAST, train          # torch: after argparse, so --help and usage errors are quick

    save = Path(config.save_path)
    check_output_folder(save, "--save_path")
    check_device(config.device)
    resume = args.checkpoint or (str(save / LAST) if args.resume and (save / LAST).exists() else None)
    log = MetricsLog(save / "metrics.jsonl")
    wandb_log, wandb_run = _wandb_logger(args, config) if args.wandb else (None, None)

    def report(metrics: dict, checkpoint_dir: str | None) -> None:
        log(metrics)
        if wandb_log:
            wandb_log(metrics)
        print(_summary(metrics), file=sys.stderr)

    try:
        train(config, report, resume=resume)
    finally:
        if wandb_run is not None:
            wandb_run.finish()
    print(f"done: {save}/metrics.jsonl, {save}/model_final.pth.tar")
    return 0


def _summary(m: dict) -> str:
    parts = [f"epoch {m['epoch']}", m["phase"]]
    if m.get("tau") is not None:
        parts.append(f"tau {m['tau']:.3f}")
    parts += [f"loss {m['train_loss']:.4f}", f"val bpp {m['val_bpp']:.4f}", f"val PSNR {m['val_psnr']:.2f}",
              f"inter_scale_reg {m['inter_scale_reg']:+.4f}"]
    parts += [f"R² {k.removeprefix('val_inter_scale_r2_')} {v:.3f}" for k, v in m.items()
              if k.startswith("val_inter_scale_r2_")]
    parts.append(f"{m['images_per_s']:.1f} img/s")
    if "real_bpp" in m and not math.isnan(m["real_bpp"]):
        parts.append(f"real bpp {m['real_bpp']:.4f}")
    return " | ".join(parts)


if __name__ == "__main__":
    sys.exit(run_cli(main))
