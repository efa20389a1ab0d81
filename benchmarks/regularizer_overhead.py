"""Train-step time with both regularizers on vs off, per Phase 2 aligner (same model, same
batch, one run, interleaved).

    python -m benchmarks.regularizer_overhead [--models HPCM_Tiny HPCM_Base] [--batch 2]
        [--aligners crossfit ...] [--write]

"on" = Phase 1 DCT truncation of the batch (mid-ramp) + the Phase 2 term with each aligner
(``crossfit`` is the default); ratio = on/off median step time (goal <= 1.02 for HPCM_Base).
Both go through ``trainer.train_step``, the step the training loop takes; ``term_s`` is the
Phase 2 term alone (forward + backward) per aligner on the model's latents. ``--write`` stores
the result as the ``regularizers_on_off`` section of benchmarks/results.json (other sections kept).
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace

import torch

from trainable.config import TrainConfig
from trainable.regularizers import ALIGNERS, InterScaleRegularizer
from trainable.trainer import Run, train_step

from .timing import interleaved_medians

STEPS = 1000   # Phase 1 length in steps; measured at its middle
SECTION = "regularizers_on_off"


def measure(model: str, batch: int, size: int, repeats: int, device: torch.device,
            aligners: tuple[str, ...] = tuple(ALIGNERS)) -> dict:
    base = TrainConfig(model_name=model, device=str(device), truncation_epochs=1)
    torch.manual_seed(0)
    runs = {"off": Run(base, device, STEPS)}
    for aligner in aligners:
        runs[aligner] = Run(replace(base, spectral_reg=True, phase2_reg=True, phase2_aligner=aligner), device, STEPS)
        runs[aligner].model.load_state_dict(runs["off"].model.state_dict())
    for run in runs.values():
        run.global_step = STEPS // 2
        run.model.train()
    x = torch.rand(batch, 3, size, size, device=device)
    med = interleaved_medians({name: (lambda r=run, on=name != "off": train_step(r, x, on))
                               for name, run in runs.items()}, repeats=repeats, device=device)
    return {"model": model, "device": str(device), "batch": [batch, 3, size, size], "repeats": repeats,
            "step_s": med, "ratio_on_over_off": {a: med[a] / med["off"] for a in aligners},
            "term_s": term_seconds(runs["off"], x, repeats, device, aligners)}


def term_seconds(run: Run, x: torch.Tensor, repeats: int, device: torch.device, aligners: tuple[str, ...]) -> dict:
    """Median seconds of the Phase 2 term alone (forward + backward to the latents) per aligner,
    on the model's own latents of ``x``: what the term costs when a loaded machine hides it in
    the step-time noise."""
    with torch.no_grad():
        out = run.model(x, return_scale_latents=True)
    latents, masks = [t.detach() for t in out["scale_latents"]], out["scale_new_masks"]
    regs = {a: InterScaleRegularizer(run.model.scale_channels, aligner=a).to(device) for a in aligners}
    return timed_terms(latents, masks, regs, repeats, device)


def timed_terms(latents: list[torch.Tensor], masks: list[torch.Tensor] | None, regs: dict[str, InterScaleRegularizer],
                repeats: int, device: torch.device = torch.device("cpu")) -> dict[str, float]:
    """Median seconds of each regularizer's term on ``latents`` (forward + backward to them), interleaved."""
    def step(reg):
        leaves = [t.clone().requires_grad_() for t in latents]
        reg(leaves, masks)[0].backward()

    return interleaved_medians({name: (lambda r=reg: step(r)) for name, reg in regs.items()}, repeats=repeats, device=device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["HPCM_Tiny", "HPCM_Base"])
    p.add_argument("--aligners", nargs="+", default=list(ALIGNERS), choices=list(ALIGNERS))
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--write", action="store_true", help=f"store as the {SECTION!r} section of benchmarks/results.json")
    a = p.parse_args()
    result = [measure(m, a.batch, a.size, a.repeats, torch.device(a.device), tuple(a.aligners)) for m in a.models]
    print(json.dumps(result, indent=2))
    if a.write:
        from .run import RESULTS
        results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        results[SECTION] = result
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
