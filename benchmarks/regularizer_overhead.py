"""Train-step time with both regularizers on vs off (same model, same batch, one run).

    python -m benchmarks.regularizer_overhead [--models HPCM_Tiny HPCM_Base] [--batch 4]

"on" = Phase 1 DCT truncation of the batch (tau 0.5) + Phase 2 inter-scale term;
ratio = on/off median step time (goal ≤ 1.02).
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace

import torch

from trainable.config import TrainConfig
from trainable.loss import RateDistortionLoss
from trainable.regularizers import truncate
from trainable.trainer import Run

from .timing import interleaved_medians


def _step(run: Run, criterion: RateDistortionLoss, x: torch.Tensor, regularized: bool) -> None:
    if regularized:
        x = truncate(x, 0.5)
    out = run.model(x, return_scale_latents=regularized)
    loss = criterion(out, x)["loss"]
    if regularized:
        loss = loss + run.regularizer(out["scale_latents"], out["scale_new_masks"])[0]
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()


def measure(model: str, batch: int, size: int, repeats: int, device: torch.device) -> dict:
    base = TrainConfig(model_name=model, device=str(device))
    torch.manual_seed(0)
    off = Run(base, device)
    on = Run(replace(base, spectral_reg=True, phase2_reg=True), device)
    on.model.load_state_dict(off.model.state_dict())
    criterion = RateDistortionLoss(0.013)
    x = torch.rand(batch, 3, size, size, device=device)
    med = interleaved_medians({"off": lambda: _step(off, criterion, x, False),
                               "on": lambda: _step(on, criterion, x, True)}, repeats=repeats, device=device)
    peak = {}
    if device.type == "cuda":
        for name, run, reg in (("off", off, False), ("on", on, True)):
            torch.cuda.reset_peak_memory_stats(device)
            _step(run, criterion, x, reg)
            peak[name] = torch.cuda.max_memory_allocated(device) / 2**20
    return {"model": model, "device": str(device), "batch": [batch, 3, size, size], "step_s": med,
            "ratio_on_over_off": med["on"] / med["off"], **({"peak_mib": peak} if peak else {})}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["HPCM_Tiny", "HPCM_Base"])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args()
    print(json.dumps([measure(m, a.batch, a.size, a.repeats, torch.device(a.device)) for m in a.models], indent=2))


if __name__ == "__main__":
    main()
