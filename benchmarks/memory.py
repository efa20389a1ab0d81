"""Memory of training: peak of a step with and without Phase 2 (fresh process per variant),
and what backward keeps per training image, which the dry run's memory plan scales.

    python -m benchmarks.memory [--model HPCM_Base] [--batch 2]
    python -m benchmarks.memory --activations     # writes "training_memory" in results.json

Peak: on CUDA ``torch.cuda.max_memory_allocated``; on CPU the process's peak RSS.
Activations: the distinct storages autograd saves for backward in one training forward (loss
included) of one 256² crop, parameters excluded, fp32 and under bf16 autocast. They are the
same on every device (the tensors a backward needs), so the CPU measures them for a GPU plan;
not included: parameters, gradients and Adam's moments (counted from the parameter count),
backward's transient buffers, cuDNN workspaces and the caching allocator's rounding.
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


def saved_bytes_per_image(model: str, amp: str) -> int:
    """Bytes of the distinct non-parameter storages saved for backward, one 256² training crop."""
    from contextlib import nullcontext

    from trainable.loss import RateDistortionLoss
    from trainable.models import create_model

    torch.manual_seed(0)
    net = create_model(model).train()
    params = {p.untyped_storage().data_ptr() for p in net.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return t
    x = torch.rand(1, 3, 256, 256)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if amp == "bf16" else nullcontext()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast:
        RateDistortionLoss(0.01)(net(x), x)["loss"]
    return sum(saved.values())


def activations(models: list[str]) -> dict:
    from trainable.models import create_model

    out = {"what": "GiB saved for backward per 256x256 training crop (distinct storages, parameters excluded)"}
    for model in models:
        out[model] = {"parameters": sum(p.numel() for p in create_model(model).parameters()),
                      **{f"saved_gib_per_crop_{amp}": saved_bytes_per_image(model, amp) / 2**30
                         for amp in ("fp32", "bf16")}}
    return out


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
    p.add_argument("--activations", action="store_true", help="measure what backward keeps per crop, every model")
    a = p.parse_args()
    if a.activations:
        from pathlib import Path

        from trainable.models import model_names

        torch.set_num_threads(1)
        path = Path(__file__).with_name("results.json")
        results = json.loads(path.read_text())
        results["training_memory"] = activations(list(model_names()))
        path.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(results["training_memory"], indent=2))
        return
    if a.child is not None:
        print(_one(a.model, a.batch, a.child == "1", a.device))
        return
    print(json.dumps(measure(a.model, a.batch, a.device), indent=2))


if __name__ == "__main__":
    main()
