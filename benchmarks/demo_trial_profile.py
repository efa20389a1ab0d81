"""Where a `make demo` trial's time goes: one trial of the cpu-smoke preset under cProfile.

    OMP_NUM_THREADS=1 python -m benchmarks.demo_trial_profile [--epochs 2] [--delta 0.1]
        [--batch-size B --steps-per-epoch S]   # another budget than the preset's, to compare

One configuration at every preset λ (``train_curve``, as a Ray trial runs it, without Ray)
for ``--epochs`` epochs with the preset's steps, batch, patch and warm start. The profile
clock is the process's CPU time, so the shares hold on a busy machine (the wall clock does
not); sections are cumulative CPU seconds of the functions that do the work: the training
steps, the per-epoch validation of every λ model (and the inter-scale predictability fit
inside it), real bitstreams after the last epoch, checkpoints. A full demo trial is the
per-epoch share × the preset's epochs + the once-per-trial parts.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import tempfile
import time
from dataclasses import replace

from search.config import SearchConfig
from search.plan import make_plan
from search.run import warm_start
from trainable.config import TrainConfig
from trainable.curve import CurveConfig, train_curve

# section → function names (cumulative CPU time of their outermost calls; a name missing in this version counts 0)
SECTIONS = {
    "train_steps": ("train_step",),                    # forward, backward, Adam of every λ model
    "image_decoding": ("read_rgb",),                   # training crops' source images (+ validation images)
    "validation": ("evaluate",),                       # per-epoch validation of every λ model
    "predictability": ("inter_scale_r2", "pair_rows", "scale_predictability"),
    "real_bpp": ("real_bpp",),
    "checkpoints": ("save_atomic",),
}


def _cumulative(stats: pstats.Stats, names: tuple[str, ...]) -> float:
    """Cumulative CPU seconds of the outermost calls of ``names`` in the project's code."""
    total = 0.0
    for (file, _, func), (_, _, _, cumtime, callers) in stats.stats.items():
        if func in names and "site-packages" not in file and not any(c[2] in names for c in callers):
            total += cumtime
    return total


def demo_trial(delta: float, epochs: int, save_path: str, **budget) -> CurveConfig:
    plan = warm_start(make_plan(SearchConfig.create("phase2_delta", "cpu-smoke", **budget), verify_data=False))
    conf = plan.configuration({"delta": delta})
    base: TrainConfig = replace(plan.base, **conf.overrides, epochs=epochs, save_path=save_path)
    return CurveConfig(base, plan.lambdas)


def sections(stats: pstats.Stats) -> dict[str, float]:
    return {section: round(_cumulative(stats, names), 2) for section, names in SECTIONS.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--delta", type=float, default=0.1, help="Phase 2 δ (0: the off configuration)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--steps-per-epoch", type=int)
    p.add_argument("--top", type=int, default=0, help="also print the N functions with the most own CPU time")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        curve = demo_trial(a.delta, a.epochs, tmp, batch_size=a.batch_size, steps_per_epoch=a.steps_per_epoch)
        profiler = cProfile.Profile(time.process_time)
        wall, cpu = time.perf_counter(), time.process_time()
        profiler.enable()
        train_curve(curve, lambda metrics, checkpoint: None)
        profiler.disable()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    stats = pstats.Stats(profiler)
    parts = sections(stats)
    result = {"epochs": a.epochs, "delta": a.delta, "lambdas": list(curve.lambdas),
              "steps_per_epoch": curve.base.steps_per_epoch, "batch_size": curve.base.batch_size,
              "patch_size": curve.base.patch_size, "cpu_s": round(cpu, 2), "wall_s": round(wall, 2),
              "sections_cpu_s": parts}
    print(json.dumps(result, indent=2))
    if a.top:
        stats.sort_stats("tottime").print_stats(a.top)


if __name__ == "__main__":
    main()
