"""``python -m trainable.pretrained.make``: rebuild the shipped HPCM_Tiny warm start.

Trains with the project's own loop (``trainable.trainer.train``) on the built-in sample
``train`` split, validating on ``val``, and copies the run's ``model_final.pth.tar``
(inference state_dict, entropy tables built) to ``--out`` (default: the packaged file).
About 8 minutes on one CPU core. Torch's RNGs are seeded, but CPU kernels may differ across
machines, so a rebuilt file is equivalent, not byte-identical.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ..cli import OneLineParser, run_cli
from ..config import TrainConfig
from ..paths import check_device, check_output_file
from . import WARM_START_MODEL, warm_start_path

# The recipe of the shipped file: epochs x steps_per_epoch optimizer steps.
RECIPE = dict(model_name=WARM_START_MODEL, metric="mse", lmbda=0.013, epochs=24, steps_per_epoch=100,
              batch_size=8, patch_size=128, learning_rate=1e-3, lr_schedule="cosine", seed=0,
              num_workers=0, device="cpu")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m trainable.pretrained.make", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(warm_start_path()), help="where to write the state_dict")
    p.add_argument("--lambda", dest="lmbda", type=float, default=RECIPE["lmbda"])
    p.add_argument("--epochs", type=int, default=RECIPE["epochs"])
    p.add_argument("--steps-per-epoch", type=int, default=RECIPE["steps_per_epoch"])
    p.add_argument("--device", default=RECIPE["device"])
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_output_file(args.out, "--out")
    check_device(args.device)
    from ..trainer import FINAL, train        # torch: only when actually training

    with tempfile.TemporaryDirectory(prefix="hpcm-warm-start-") as tmp:
        config = TrainConfig(**{**RECIPE, "lmbda": args.lmbda, "epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch,
                                "device": args.device},
                             save_path=tmp, save_best=False).validated()
        start = time.perf_counter()

        def report(metrics: dict, _checkpoint_dir: str | None) -> None:
            print(f"epoch {metrics['epoch']}/{config.epochs}: val_loss {metrics['val_loss']:.4f} "
                  f"val_bpp {metrics['val_bpp']:.4f} val_psnr {metrics['val_psnr']:.2f} dB "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)

        metrics = train(config, report)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(tmp) / FINAL, out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB): {config.epochs * config.steps_per_epoch} steps in "
          f"{time.perf_counter() - start:.0f} s, real bpp on val {metrics.get('real_bpp', float('nan')):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
