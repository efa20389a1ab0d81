"""What a search will cost, before it starts (``search.run --dry-run``).

cost = trials × λ models per trial × (optimizer steps × seconds per step + validations ×
seconds per validation). A trial is a configuration × seed; its K λ models each train
``max_epochs × steps_per_epoch`` steps whether they share a GPU (one after another) or are
spread over several, so GPU-hours do not depend on the placement; wall-clock does.

Seconds per step of one λ model, first of:
1. ``--step-seconds`` (the plan's model at the plan's batch and patch);
2. ``--step-seconds-from FILE``, else :data:`GPU_CHECK_JSON` when it exists: what
   ``benchmarks.gpu_check`` measured for the model (K λ models in lockstep, regularizers on,
   per model), scaled by pixels per step to the plan's batch and patch;
3. measured here: a GPU plan on a machine with CUDA times a few real training steps
   (``trainer.train_step``, the plan's batch and patch) of each model;
4. :data:`GPU_STEP_SECONDS` / :data:`CPU_STEP_SECONDS` scaled by pixels per step
   (batch × patch²) from their reference batch; small batches use a GPU less well, so a
   scaled figure is a lower bound there.
A validation is a forward pass over the validation images, costed as one third of a step
per pixel (forward ≈ ⅓ of forward + backward). A GPU plan also checks the data loader
(``loader_plan``: a step waits for a loader that cannot keep up, and the cost counts it) and
the memory per GPU (``memory_plan``: a plan that does not fit is refused). Not counted: the
final rANS coding of the validation set, regularizer overhead (+0–10 % per step on CPU,
``benchmarks/results.json`` ``regularizers_on_off``), Ray start-up.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from trainable.config import TrainConfig
from trainable.errors import InputError

from .loader_plan import LoaderPlan, loader_plan
from .memory_plan import MemoryPlan, gpu_memory_gib, memory_plan
from .overhead import profiled_steps, trial_overhead
from .plan import Plan

GPU_CHECK_JSON = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "gpu_check.json"

# Seconds per optimizer step of one λ model, fp32, batch 16 of 256² crops, one H100-class GPU.
# HPCM_Base: the figure issue 17 assumed (no official one is published). The others: HPCM_Base's
# times their step-time ratio to HPCM_Base on CPU (below), floored at 0.02 s, a guess for
# launch-bound small models. Measure before you trust them (a dry run on a GPU machine does).
GPU_REFERENCE = (16, 256)
GPU_STEP_SECONDS = {"HPCM_Base": 0.15, "HPCM_Large": 0.19, "HPCM_Tiny": 0.02, "DHIC_Base": 0.02, "DHIC_Tiny": 0.02}
# Seconds per step on this project's 2-core CPU machine, batch 2 of 256²: HPCM_Tiny and HPCM_Base
# from benchmarks/results.json (regularizers_on_off, "off"); HPCM_Large, DHIC_Base and DHIC_Tiny
# from their ratio to the nearest of those two, measured interleaved on a shared machine
# (batch 2 x 128², 1 thread: Large/Base 1.23, DHIC_Base/HPCM_Base 0.066, DHIC_Tiny/HPCM_Tiny 0.56).
CPU_REFERENCE = (2, 256)
CPU_STEP_SECONDS = {"HPCM_Base": 2.61, "HPCM_Large": 3.2, "HPCM_Tiny": 0.124, "DHIC_Base": 0.17, "DHIC_Tiny": 0.07}
FORWARD_SHARE = 1 / 3
BYTES_PER_VALUE = 4                 # fp32
ADAM_MOMENTS = 2


@dataclass(frozen=True)
class ModelCost:
    """One model's step time and checkpoint figures at the plan's batch and patch."""

    model: str
    step_seconds: float
    source: str
    state_values: int               # numbers in the state_dict (weights and buffers)
    parameters: int                 # trainable numbers (Adam keeps two moments of each)
    validation_seconds: float | None = None     # measured per validation; else FORWARD_SHARE of a step

    @property
    def checkpoint_bytes(self) -> int:
        return BYTES_PER_VALUE * (self.state_values + ADAM_MOMENTS * self.parameters)


@dataclass(frozen=True)
class Cost:
    """A plan's cost in hours of the device its trials ask for (GPU, else CPU) and its lines."""

    plan: Plan
    trials: dict[str, int]          # model → trials that train it
    models: dict[str, ModelCost]
    steps_per_epoch: int
    val_pixels: int
    gpus: int                       # for the wall-clock line
    loader: dict[str, LoaderPlan] = field(default_factory=dict)     # GPU plans: per model
    memory: dict[str, MemoryPlan] = field(default_factory=dict)

    @property
    def unit(self) -> str:
        return "GPU" if self.plan.config.gpus_per_trial > 0 else "CPU"

    @property
    def lambdas(self) -> int:
        return len(self.plan.lambdas)

    @property
    def steps(self) -> int:
        """Optimizer steps of one λ model that is never stopped."""
        return self.plan.config.max_epochs * self.steps_per_epoch

    def validation_seconds(self, model: str) -> float:
        """One validation of one λ model (forward over every validation image)."""
        batch, patch = self.plan.base.batch_size, self.plan.base.patch_size
        if self.models[model].validation_seconds is not None:
            return self.models[model].validation_seconds
        return self.models[model].step_seconds * FORWARD_SHARE * self.val_pixels / (batch * patch * patch)

    def step_seconds(self, model: str) -> float:
        """One λ model's step as the trial runs it: at the loader's pace when the loader binds."""
        loader = self.loader.get(model)
        return self.models[model].step_seconds * (loader.slowdown if loader else 1.0)

    def model_hours(self, model: str, epochs: float | None = None) -> float:
        """Hours of one λ model trained ``epochs`` epochs (default: all)."""
        epochs = self.plan.config.max_epochs if epochs is None else epochs
        seconds = epochs * (self.steps_per_epoch * self.step_seconds(model) + self.validation_seconds(model))
        return seconds / 3600

    def trial_hours(self, model: str) -> float:
        return self.lambdas * self.model_hours(model)

    @property
    def total_hours(self) -> float:
        """Every trial trained to the end (FIFO; ASHA's upper bound)."""
        return sum(n * self.trial_hours(m) for m, n in self.trials.items())

    @property
    def asha_hours(self) -> float:
        """Successive halving's expectation: at each rung (grace × rf^k epochs) all but 1/rf of
        the trials that reached it stop; the survivors of the last rung train to the end."""
        cfg = self.plan.config
        rungs, milestone = [], self.plan.grace
        while milestone < cfg.max_epochs:
            rungs.append(milestone)
            milestone = math.ceil(milestone * cfg.reduction_factor)
        epochs, alive = 0.0, 1.0
        for rung in rungs:
            stop = alive * (1 - 1 / cfg.reduction_factor)
            epochs += stop * rung
            alive -= stop
        epochs += alive * cfg.max_epochs
        return sum(n * self.lambdas * self.model_hours(m, epochs) for m, n in self.trials.items())

    def checkpoint_bytes(self, model: str) -> int:
        """One trial's training checkpoint: K λ models × (weights + Adam's two moments)."""
        return self.lambdas * self.models[model].checkpoint_bytes

    def lines(self) -> list[str]:
        plan, cfg, unit = self.plan, self.plan.config, self.unit
        n = sum(self.trials.values())
        what = (f"{len(plan.configurations)} configurations (grid)" if plan.configurations is not None
                else f"{cfg.num_samples} configurations ({plan.searcher})")
        sched = f"ASHA, grace {plan.grace} epochs" if plan.scheduler == "asha" else "FIFO"
        lam = ", ".join(f"{v:g}" for v in plan.lambdas)
        out = [f"plan {plan.name} (preset {cfg.preset}): {what} x {cfg.seeds} seed(s) = {n} trials; {sched}",
               f"  each trial: {self.lambdas} λ models ({lam}), {self.steps:,} steps each = {cfg.max_epochs} "
               f"validations every {self.steps_per_epoch:,} steps; batch {plan.base.batch_size}, "
               f"patch {plan.base.patch_size}, lr {plan.base.learning_rate:g}",
               f"  warm start: {_describe_init(plan.base.init_weights)}"]
        for model, mc in self.models.items():
            size = self.checkpoint_bytes(model)
            out += [f"  {model} ({self.trials[model]} trials): {mc.step_seconds:.3g} s per step ({mc.source}); "
                    f"validation {self.validation_seconds(model):.3g} s ({self.val_pixels / 1e6:.2f} Mpx); "
                    f"{self.trial_hours(model):.3g} {unit}-hours per trial",
                    f"  checkpoint per trial: {self.lambdas} x {_size(mc.checkpoint_bytes)} = {_size(size)} "
                    f"({mc.parameters / 1e6:.2f} M parameters: weights + 2 Adam moments, fp32; one kept per trial); "
                    f"all trials: {_size(size * self.trials[model])}, plus {self.lambdas} final weight files per "
                    f"trial ({_size(self.lambdas * BYTES_PER_VALUE * mc.state_values)})"]
            if model in self.loader:
                out += self.loader[model].lines()
            if model in self.memory:
                out.append(self.memory[model].line())
        if plan.scheduler == "asha":
            out.append(f"  ASHA (reduction factor {cfg.reduction_factor:g}) is expected to stop most trials early: "
                       f"about {self.asha_hours:.1f} {unit}-hours if it keeps 1/{cfg.reduction_factor:g} at each rung")
        if unit == "GPU":
            out.append(self._wall_clock())
            out.append(f"total: {self.total_hours:.1f} {unit}-hours")
        else:
            out += self._cpu_overhead_and_total()
        return out

    def _cpu_overhead_and_total(self) -> list[str]:
        """Each trial's start-up, checkpoints and real bpp (:mod:`.overhead`), counted in a CPU plan's
        total: on a small CPU budget they are a large share of a trial."""
        cfg, out, extra = self.plan.config, [], 0.0
        for model, trials in self.trials.items():
            overhead = trial_overhead(cfg.max_epochs, cfg.checkpoint_every, self.lambdas,
                                      self.models[model].checkpoint_bytes, self.val_pixels)
            out.append(overhead.line(trials, self.unit) + (f" ({model})" if len(self.trials) > 1 else ""))
            extra += trials * overhead.seconds / 3600
        out.append(f"total: {self.total_hours + extra:.2f} CPU-hours (steps and validations {self.total_hours:.2f}, "
                   f"per-trial overhead {extra:.2f})")
        return out

    def _wall_clock(self) -> str:
        """Trials run in rounds of ``at_once``; a trial's λ models share its GPU (one after
        another) or are spread over its GPUs; a fraction of a GPU is shared with other trials."""
        g = self.plan.config.gpus_per_trial
        at_once = math.floor(self.gpus / g + 1e-9)
        if self.plan.config.max_concurrent is not None:
            at_once = min(at_once, self.plan.config.max_concurrent)
        if at_once < 1:
            return f"  on {self.gpus} GPUs: a trial asks for {g:g} GPUs, more than there are"
        spread = min(g, self.lambdas) if g >= 1 else g
        longest = max(self.trial_hours(m) for m in self.trials) / spread
        rounds = math.ceil(sum(self.trials.values()) / at_once)
        asha = "; fewer if ASHA stops trials" if self.plan.scheduler == "asha" else ""
        return (f"  on {self.gpus} GPUs ({g:g} per trial, {at_once} trials at once): about {rounds * longest:.1f} h "
                f"wall-clock ({rounds} rounds of a {longest:.1f} h trial{asha})")


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} TB"


def _describe_init(spec: str | None) -> str:
    if spec is None:
        return "none (from scratch)"
    return "one checkpoint per λ" if spec.lstrip().startswith("{") else spec


def default_step_seconds(model: str, batch: int, patch: int, gpu: bool) -> tuple[float, str]:
    """The documented default for ``model``, scaled by pixels per step; (seconds, where from)."""
    table, (ref_batch, ref_patch) = ((GPU_STEP_SECONDS, GPU_REFERENCE) if gpu else (CPU_STEP_SECONDS, CPU_REFERENCE))
    if model not in table:
        from trainable.errors import InputError

        raise InputError(f"no default step time for model {model}; pass --step-seconds")
    scale = batch * patch * patch / (ref_batch * ref_patch * ref_patch)
    where = "one H100-class GPU" if gpu else "2 CPU cores"
    return table[model] * scale, f"default for {where}, scaled from batch {ref_batch} x {ref_patch}²"


def measure_step_seconds(config: TrainConfig, steps: int = 5) -> float:
    """Median seconds of ``steps`` real training steps (after 2 warm-up steps) of ``config``'s
    model on ``config.device``, at its batch, crop and precision settings."""
    import torch

    from trainable.trainer import Run, resolve_device, train_step

    dev = resolve_device(config.device)
    run = Run(config, dev, steps)
    x = torch.rand(config.batch_size, 3, config.patch_size, config.patch_size, device=dev)
    times = []
    for i in range(steps + 2):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        start = time.perf_counter()
        train_step(run, x, False)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def _sizes(model: str) -> tuple[int, int]:
    from trainable.models import create_model

    net = create_model(model)
    return (sum(v.numel() for v in net.state_dict().values()),
            sum(p.numel() for p in net.parameters() if p.requires_grad))


def _trials_per_model(plan: Plan) -> dict[str, int]:
    seeds = plan.config.seeds
    if plan.configurations is None:       # sampled: every sample costed as the off configuration's model
        model = plan.off.overrides.get("model_name", plan.base.model_name)
        return {model: plan.config.num_samples * seeds}
    out: dict[str, int] = {}
    for conf in plan.configurations:
        model = conf.overrides.get("model_name", plan.base.model_name)
        out[model] = out.get(model, 0) + seeds
    return out


def _dataset_figures(plan: Plan) -> tuple[int, int, int]:
    """(steps per epoch, validation pixels, largest validation image's pixels) from the plan's
    datasets (cached manifests)."""
    from trainable.data import dataset_manifest

    val = dataset_manifest(plan.datasets["val"])
    pixels = sum(w * h for w, h in val.sizes)
    spe = plan.base.steps_per_epoch
    if not spe:                          # one pass over the training set (Datasets.steps_per_epoch)
        n, b = len(dataset_manifest(plan.datasets["train"]).files), plan.base.batch_size
        spe = n // b if n >= b else 1
    return spe, pixels, max(w * h for w, h in val.sizes)


def checked_step_seconds(path: Path, model: str, batch: int, patch: int, required: bool) -> tuple[float, str] | None:
    """What ``benchmarks.gpu_check`` measured for ``model`` (per λ model, in lockstep with the
    others), scaled by pixels per step to ``batch`` x ``patch``²; None when it has no figure for it
    (an error when ``required``: the user named the file)."""
    try:
        steps = json.loads(path.read_text())["planner"]
        steps["step_seconds"], steps["batch"], steps["patch"], steps["models"]
    except (OSError, ValueError, KeyError, TypeError):
        if not required:
            return None
        raise InputError(f"{path} holds no step time from benchmarks.gpu_check (a passed 'planner' check)") from None
    if steps.get("model") != model:
        return None
    scale = batch * patch * patch / (steps["batch"] * steps["patch"] ** 2)
    return (steps["step_seconds"] * scale,
            f"{path.name}: gpu_check on {steps.get('device', '?')}, {steps['models']} λ models in lockstep, "
            f"batch {steps['batch']} x {steps['patch']}², scaled")


def plan_cost(plan: Plan, step_seconds: float | None = None, gpus: int | None = None,
              measure: bool | None = None, step_seconds_from: str | Path | None = None,
              measure_loader: bool = False, gpu_memory: float | None = None) -> Cost:
    """The plan's cost. ``measure`` (default: a GPU plan on a CUDA machine without a gpu_check
    figure) times real steps; a GPU plan that does not fit the GPU memory raises :class:`InputError`."""
    import torch

    gpu = plan.config.gpus_per_trial > 0
    batch, patch = plan.base.batch_size, plan.base.patch_size
    trials = _trials_per_model(plan)
    checked = Path(step_seconds_from) if step_seconds_from is not None else GPU_CHECK_JSON
    if step_seconds_from is not None and not checked.is_file():
        raise InputError(f"--step-seconds-from: {checked} not found")
    use_checked = step_seconds is None and gpu and checked.is_file()
    models = {}
    for model in trials:
        validation = None
        found = checked_step_seconds(checked, model, batch, patch, step_seconds_from is not None) if use_checked else None
        if measure is None:
            measure = gpu and step_seconds is None and found is None and torch.cuda.is_available()
        if step_seconds is not None:
            seconds, source = step_seconds, "--step-seconds"
        elif found is not None:
            seconds, source = found
        elif measure:
            device = "cuda" if gpu else "cpu"
            seconds = measure_step_seconds(replace(plan.base, model_name=model, device=device, init_weights=None))
            source = f"measured here on {torch.cuda.get_device_name() if gpu else 'CPU'}"
        elif not gpu and (profiled := profiled_steps(model, batch, patch)) is not None:
            seconds, source, validation = profiled.step_seconds, profiled.source, profiled.validation_seconds
        else:
            seconds, source = default_step_seconds(model, batch, patch, gpu)
        models[model] = ModelCost(model, seconds, source, *_sizes(model), validation_seconds=validation)
    spe, val_pixels, val_largest = _dataset_figures(plan)
    if gpus is None:
        gpus = torch.cuda.device_count() or 8
    loader, memory = {}, {}
    if gpu:
        capacity = gpu_memory_gib(gpu_memory)
        for model, mc in models.items():
            loader[model] = loader_plan(plan, mc.step_seconds, measure_loader)
            memory[model] = memory_plan(plan, model, mc.parameters, val_largest, capacity)
    return Cost(plan=plan, trials=trials, models=models, steps_per_epoch=spe, val_pixels=val_pixels, gpus=gpus,
                loader=loader, memory=memory)


def check_memory(plan: Plan, gpu_memory: float | None = None) -> None:
    """Refuse (:class:`InputError`, one line) a GPU plan whose λ models do not fit a GPU."""
    if plan.config.gpus_per_trial <= 0:
        return
    capacity = gpu_memory_gib(gpu_memory)
    largest = _dataset_figures(plan)[2]
    for model in _trials_per_model(plan):
        memory_plan(plan, model, _sizes(model)[1], largest, capacity).check()
