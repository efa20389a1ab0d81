"""Peak memory of a training step with and without Phase 2 (fresh process per variant).

    python -m benchmarks.memory [--model HPCM_Base] [--batch 2]

On CUDA: ``torch.cuda.max_memory_allocated``; on CPU: the process's peak RSS.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import torch

from trainable.config import TrainConfig
from trainable.trainer import Run, train_step


def _one(model: str, batch: int, phase2: bool, device: str) -> float:
    dev = torch.device(device)
    run = Run(TrainConfig(model_name=model, phase2_reg=phase2), dev, steps_per_epoch=2)
    run.model.train()
    x = torch.rand(batch, 3, 256, 256, device=dev)
    for _ in range(2):
        train_step(run, x, phase2)
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(model: str, batch: int, device: str) -> dict:
    peaks = {}
    for name, flag in (("off", "0"), ("on", "1")):
        out = subprocess.run([sys.executable, "-m", "benchmarks.memory", "--child", flag, "--model", model,
                              "--batch", str(batch), "--device", device], capture_output=True, text=True, check=True)
        peaks[name] = float(out.stdout.strip().splitlines()[-1])
    return {"model": model, "device": device, "batch": batch, "peak_mib": peaks,
            "extra_mib_phase2": peaks["on"] - peaks["off"], "ratio_on_over_off": peaks["on"] / peaks["off"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="HPCM_Base")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--child", choices=["0", "1"], help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child is not None:
        print(_one(a.model, a.batch, a.child == "1", a.device))
        return
    print(json.dumps(measure(a.model, a.batch, a.device), indent=2))


if __name__ == "__main__":
    main()
