"""What a CPU trial costs besides the optimizer steps and validations ``search.cost`` prices.

Per trial: Ray and worker start-up, the trial's set-up (models, warm start, validation images),
its checkpoints (every ``checkpoint_every`` epochs and after the last, K λ models each) and
the real rANS bitstreams of the validation set after the last epoch. Figures from one
measured ``cpu-smoke`` trial (12 epochs x 16 steps, batch 4 x 128², 4 HPCM_Tiny λ models,
``benchmarks/results/demo_trial_profile.json``: CPU seconds by section) and Tune's start-up
cost over a plain run (``benchmarks/results.json`` ``tune_vs_plain``). Not here: the data
loader's decoding (``search.cost``'s loader figures).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

START_SECONDS = 2.9 + 15.4       # Ray/worker start-up (tune_fit_s - plain_s) + set-up (trial CPU - its sections)
CHECKPOINT_SECONDS_PER_MB = 6.26 / (12 * 4 * 5.42)    # 12 checkpoints of 4 x 5.42 MB in 6.26 CPU-s
REAL_BPP_SECONDS_PER_MPX = 0.75 / (4 * 0.52)           # 4 λ models coding 0.52 Mpx in 0.75 CPU-s
PROFILE = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "demo_trial_profile.json"
PROFILED_MODEL = "HPCM_Tiny"      # benchmarks.demo_trial_profile trains the demo's model


@dataclass(frozen=True)
class ProfiledSteps:
    """One λ model's CPU seconds per optimizer step and per validation, measured in a whole trial."""

    step_seconds: float
    validation_seconds: float
    source: str


def profiled_steps(model: str, batch: int, patch: int, path: Path = PROFILE) -> ProfiledSteps | None:
    """The measured cpu-smoke trial's per-step and per-validation CPU seconds when the plan trains
    what it trained (same model, batch and crop); None otherwise. Small CPU steps do not scale with
    pixels (per-step work that does not shrink with the crop), so a matching measurement beats the
    scaled default."""
    try:
        r = json.loads(path.read_text())["result"]
    except (OSError, ValueError, KeyError):
        return None
    if (model, batch, patch) != (PROFILED_MODEL, r["batch_size"], r["patch_size"]):
        return None
    models_epochs = r["epochs"] * len(r["lambdas"])
    sections = r["sections_cpu_s"]
    return ProfiledSteps(step_seconds=sections["train_steps"] / (models_epochs * r["steps_per_epoch"]),
                         validation_seconds=sections["validation"] / models_epochs,   # the fit runs inside it
                         source=f"measured in a cpu-smoke trial, {path.name}")


@dataclass(frozen=True)
class TrialOverhead:
    start_s: float
    checkpoint_s: float
    real_bpp_s: float

    @property
    def seconds(self) -> float:
        return self.start_s + self.checkpoint_s + self.real_bpp_s

    def line(self, trials: int, unit: str) -> str:
        return (f"  per-trial overhead: {self.seconds:.0f} s (start-up {self.start_s:.0f} s, checkpoints "
                f"{self.checkpoint_s:.0f} s, real bpp {self.real_bpp_s:.1f} s; measured on a cpu-smoke trial) x "
                f"{trials} trials = {trials * self.seconds / 3600:.2f} {unit}-hours")


def trial_overhead(epochs: int, checkpoint_every: int, lambdas: int, checkpoint_bytes: int,
                   val_pixels: int) -> TrialOverhead:
    """The overhead of one trial of ``lambdas`` models (``checkpoint_bytes`` each) trained ``epochs``
    epochs and coding ``val_pixels`` of validation images once."""
    checkpoints = math.ceil(epochs / checkpoint_every)          # every N epochs and after the last
    return TrialOverhead(start_s=START_SECONDS,
                         checkpoint_s=checkpoints * lambdas * checkpoint_bytes / 1e6 * CHECKPOINT_SECONDS_PER_MB,
                         real_bpp_s=lambdas * val_pixels / 1e6 * REAL_BPP_SECONDS_PER_MPX)
