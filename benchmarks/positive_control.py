"""The positive control: do the two regularizers do anything measurable, per model, at this budget?

    python -m benchmarks.positive_control [--models DHIC_Tiny HPCM_Tiny] [--configurations off phase1 phase2]
        [--seeds 3] [--epochs 8] [--steps-per-epoch 125] [--lambdas 0.002 0.006 0.018 0.054] [--out DIR]

For each model, the chosen configurations are trained with ``trainable.curve.train_curve`` at every
λ, with the same seeds (0 … N−1):

* ``off``: both regularizers off;
* ``phase1``: Phase 1 on, paper-like (tau 0.05 → 1.0 over the first half of the epochs);
* ``phase2``: Phase 2 repel at the paper's δ = 0.1 from the start (default aligner and scale latents);
* ``phase1+2``: the paper's schedule: Phase 1 over the first half, then Phase 2 repel δ = 0.1.

Measured, per model and configuration (vs off):

* Convergence: for every λ and seed, the (linearly interpolated) optimizer step at which a
  configuration's validation loss first reaches off's *final* validation loss (the same rule for off
  itself); speed-up = steps_off / steps_config. Geometric mean over λ × seed, 95 % percentile
  bootstrap over seeds. When a configuration does not reach it for some λ × seed, that is the answer
  ("not reached"), not a number. Also the final validation-loss ratio config / off.
* BD-rate vs off on the held-out test split, real bitstreams per image (``analysis.evaluate``'s
  coder), with the report's interval (``analysis.verdict.bd_table``).
* The predictability measure (``trainable.regularizers.scale_predictability``, logged at validation
  as ``lambda=<λ>/val_inter_scale_<kind>_<pair>``: cross ``r2``, ``within``, ``neighbourhood``) at the
  last epoch, mean over pairs and λ, with a 95 % interval over seeds, and its cross-image CKA beside
  it: off → each configuration.
* Whether each last-epoch validation RD curve (mean over seeds, and each seed's) and each mean test
  RD curve is monotone, and every validation PSNR drop between epochs.

Writes ``DIR/positive_control.json``, ``DIR/positive_control.md`` and ``DIR/points.csv`` and prints
the table. Trained curves are kept in ``DIR/runs/``: a finished curve with the same settings is
skipped when the script runs again, an unfinished one resumes from its last epoch, so the script
can be stopped and rerun (e.g. in the background across a session). Bad input: one line on
stderr, exit status 2.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from trainable.cli import OneLineParser, run_cli
from trainable.config import TrainConfig
from trainable.errors import InputError

MODELS = ("DHIC_Tiny", "HPCM_Tiny")
LAMBDAS = (0.002, 0.006, 0.018, 0.054)
OFF, PHASE1, PHASE2, BOTH = "off", "phase1", "phase2", "phase1+2"
CONFIGURATIONS = (OFF, PHASE1, PHASE2, BOTH)
N_BOOT, RNG_SEED, CONFIDENCE = 2000, 0, 0.95
MEASURES = ("r2", "within", "neighbourhood", "cka")   # val_inter_scale_<measure>_<pair>: the measure's kinds, CKA
CHECKPOINT = "checkpoint_000000"     # the layout analysis.evaluate reads final models from


@dataclass(frozen=True)
class Budget:
    """What is trained: models × configurations × seeds × λ, each for ``epochs`` × ``steps_per_epoch``."""

    models: tuple[str, ...] = MODELS
    configurations_run: tuple[str, ...] = (OFF, PHASE1, PHASE2)
    seeds: int = 3
    epochs: int = 8
    steps_per_epoch: int = 125
    batch_size: int = 4
    # 256: DHIC's coarsest grid (stride 64) is 4x4, not 2x2 (all border). lr 1e-3: at 3e-3
    # DHIC_Tiny's validation PSNR drops 5-9 dB between epochs (docs/positive-control.md).
    patch_size: int = 256
    learning_rate: float = 1e-3
    lambdas: tuple[float, ...] = LAMBDAS
    truncation_epochs: int | None = None   # None: half the epochs (at least 1)
    train_dataset: str | None = None       # None: built-in splits
    val_dataset: str | None = None
    test_dataset: str | None = None
    device: str = "cpu"

    @property
    def truncation(self) -> int:
        return self.truncation_epochs if self.truncation_epochs is not None else max(1, self.epochs // 2)

    def configurations(self) -> dict[str, dict]:
        """The TrainConfig overrides of every configuration run, off first."""
        phase1 = {"spectral_reg": True, "tau_init": 0.05, "tau_final": 1.0, "truncation_epochs": self.truncation}
        phase2 = {"phase2_reg": True, "delta": 0.1, "phase2_sign": "repel"}
        every = {OFF: {}, PHASE1: phase1, PHASE2: {**phase2, "phase2_start_epoch": 0},
                 BOTH: {**phase1, **phase2, "phase2_start_epoch": self.truncation}}
        return {name: every[name] for name in self.configurations_run}

    def train_config(self, model: str, configuration: str, seed: int, save_path: Path) -> TrainConfig:
        base = TrainConfig(model_name=model, train_dataset=self.train_dataset, test_dataset=self.val_dataset,
                           epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate,
                           patch_size=self.patch_size, steps_per_epoch=self.steps_per_epoch, num_workers=0,
                           seed=seed, device=self.device, real_bpp=False, save_best=False,
                           save_path=str(save_path))
        return replace(base, **self.configurations()[configuration])

    def validated(self) -> "Budget":
        from trainable.models import model_names

        if self.seeds < 1:
            raise InputError(f"--seeds must be >= 1, got {self.seeds}")
        unknown = [c for c in self.configurations_run if c not in CONFIGURATIONS]
        if unknown or len(set(self.configurations_run)) != len(self.configurations_run):
            raise InputError(f"--configurations must be distinct names from {', '.join(CONFIGURATIONS)}, "
                             f"got {list(self.configurations_run)}")
        if self.configurations_run[:1] != (OFF,) or len(self.configurations_run) < 2:
            raise InputError(f"--configurations must start with off and name at least one other, "
                             f"got {list(self.configurations_run)}")
        if len(self.lambdas) < 4:
            raise InputError(f"BD-rate needs at least 4 λ values, got {len(self.lambdas)}")
        if not self.models or len(set(self.models)) != len(self.models):
            raise InputError(f"--models must be distinct model names, got {list(self.models)}")
        for model in self.models:
            if model not in model_names():
                raise InputError(f"unknown model {model!r}; choose one of {', '.join(model_names())}")
        for configuration in self.configurations():      # every value through TrainConfig's rules
            for lmbda in self.lambdas:
                replace(self.train_config(self.models[0], configuration, 0, Path(".")), lmbda=lmbda).validated()
        if self.truncation >= self.epochs:
            raise InputError(f"truncation epochs ({self.truncation}) must be < epochs ({self.epochs}): "
                             "Phase 1 must end before the run does")
        return self


# ----------------------------------------------------------------------------- training

def train_all(budget: Budget, out: Path, log: Callable[[str], None] = print) -> dict:
    """Train (or reuse) every model × seed × configuration curve; {model: {configuration: {seed: run}}},
    run = {"dir": trial directory, "history": [per-epoch curve metrics], "seconds": training time}.

    Seeds are the outer loop, so a run stopped early leaves complete seeds of every configuration.
    """
    runs: dict = {}
    for model in budget.models:
        for seed in range(budget.seeds):
            for configuration in budget.configurations():
                trial_dir = out / "runs" / model / configuration / f"seed{seed}"
                saved = train_one(budget.train_config(model, configuration, seed, trial_dir / CHECKPOINT),
                                  budget.lambdas, trial_dir, log)
                runs.setdefault(model, {}).setdefault(configuration, {})[seed] = {
                    "dir": trial_dir, "history": saved["history"], "seconds": saved["seconds"]}
    return runs


def train_one(cfg: TrainConfig, lambdas: tuple[float, ...], trial_dir: Path, log: Callable[[str], None]) -> dict:
    """One curve. ``history.json`` is rewritten after every epoch with ``done`` false until the last:
    a done record with these settings is returned as it is; an unfinished one resumes from the
    curve checkpoint of its last recorded epoch; other settings start afresh."""
    from trainable.curve import CURVE_LAST, CurveConfig, train_curve

    record = trial_dir / "history.json"
    settings = {**cfg.to_dict(), "lambdas": list(lambdas)}
    saved = json.loads(record.read_text()) if record.is_file() else None
    if saved is not None and saved.get("settings") == settings and saved.get("done", True):
        return saved
    checkpoint = Path(cfg.save_path) / CURVE_LAST
    resume = (saved is not None and saved.get("settings") == settings and bool(saved["history"])
              and _checkpoint_epoch(checkpoint) == len(saved["history"]))
    history: list[dict] = list(saved["history"]) if resume else []
    seconds = float(saved.get("seconds", 0.0)) if resume else 0.0
    if resume:
        log(f"resuming {trial_dir} after epoch {len(history)}")
    trial_dir.mkdir(parents=True, exist_ok=True)
    clock = [time.perf_counter()]

    def report(metrics: dict, _: str | None) -> None:
        nonlocal seconds
        now = time.perf_counter()
        seconds += now - clock[0]
        clock[0] = now
        history.append(dict(metrics))
        _write_json(record, {"settings": settings, "history": history, "seconds": seconds,
                             "done": metrics["epoch"] >= cfg.epochs})

    train_curve(CurveConfig(cfg, tuple(lambdas)), report, resume=checkpoint if resume else None)
    log(f"trained {trial_dir}: {seconds:.0f} s, rd_score {history[-1]['rd_score']:.4f}")
    return json.loads(record.read_text())


def _checkpoint_epoch(path: Path) -> int | None:
    """Epochs done in a curve checkpoint (None when there is none): killed between the checkpoint and
    the record, the two disagree and the curve starts afresh rather than lose an epoch's metrics."""
    from trainable.checkpoint import load_file

    return int(load_file(path)["runs"][0]["epoch"]) if path.is_file() else None


def _write_json(path: Path, value: dict) -> None:
    """Write-then-rename: a run killed mid-write leaves the previous record, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=1) + "\n")
    os.replace(tmp, path)


def code_test_set(runs: dict, budget: Budget, log: Callable[[str], None] = print):
    """Real-bitstream points on the test split for every final model: analysis.evaluate's columns + model.

    Each curve's points are kept in its ``test_points.csv`` and reused while they are newer than the
    curve's ``history.json`` and cover the same images and λs (a rerun only codes what changed)."""
    import pandas as pd
    import torch

    from analysis.evaluate import code_images
    from trainable.data import dataset_manifest, resolve_dataset

    manifest = dataset_manifest(resolve_dataset(budget.test_dataset, "test"))
    images = [(path, path.relative_to(manifest.root).as_posix(), size)
              for path, size in zip(manifest.files, manifest.sizes)]
    names = sorted(name for _, name, _ in images)
    frames = []
    for model, configurations in runs.items():
        for configuration, seeds in configurations.items():
            for seed, run in seeds.items():
                cache = Path(run["dir"]) / "test_points.csv"
                if cache.is_file() and cache.stat().st_mtime > (Path(run["dir"]) / "history.json").stat().st_mtime:
                    cached = pd.read_csv(cache)
                    if (sorted(set(cached["image"])) == names
                            and sorted(set(cached["lmbda"])) == sorted(float(v) for v in budget.lambdas)):
                        frames.append(cached)
                        continue
                trial = {"trial_id": f"{model}/{configuration}/seed{seed}", "trial_dir": str(run["dir"]),
                         "configuration": configuration, "is_off": configuration == OFF, "seed": seed,
                         "config/model_name": model}
                rows = [{"model": model, **row} for lmbda in budget.lambdas
                        for row in code_images(trial, lmbda, images, torch.device(budget.device))]
                pd.DataFrame(rows).to_csv(cache, index=False)
                frames.append(pd.read_csv(cache))
                log(f"coded the test set ({len(images)} images) with {model} {configuration} seed {seed}")
    return pd.concat(frames, ignore_index=True), [name for _, name, _ in images]


# ----------------------------------------------------------------------------- measures

def reach_epoch(losses: list[float], target: float) -> float:
    """First (linearly interpolated) epoch at which ``losses`` (epochs 1, 2, …) is <= ``target``; NaN if never
    (``analysis.convergence``'s steps-to-quality rule, counted in epochs)."""
    from analysis.convergence import steps_to_quality

    return steps_to_quality(range(1, len(losses) + 1), losses, target).step


def _series(history: list[dict], lmbda: float, metric: str) -> list[float]:
    from trainable.curve import lambda_key

    return [float(m.get(f"{lambda_key(lmbda)}/{metric}", math.nan)) for m in history]


def seed_bootstrap(values: np.ndarray, n_boot: int = N_BOOT, rng_seed: int = RNG_SEED) -> tuple[float, float, float]:
    """Geometric mean of positive ``values`` [seed, λ] and its percentile interval over resampled
    seeds (every seed has every λ, so the mean log is the mean of the per-seed mean logs)."""
    per_seed = np.log(values).mean(axis=1)
    if len(per_seed) < 2:
        point = float(np.exp(per_seed.mean()))
        return point, point, point
    return tuple(float(np.exp(v)) for v in mean_interval(list(per_seed), n_boot, rng_seed))


def convergence(runs: dict, budget: Budget, configuration: str) -> dict:
    """``configuration`` vs off: optimizer steps to reach off's final validation loss, per λ × seed,
    their ratio, and the final validation-loss ratio."""
    seeds = sorted(set(runs[OFF]) & set(runs[configuration]))
    steps = budget.steps_per_epoch
    pairs, speedups, loss_ratios = [], np.full((len(seeds), len(budget.lambdas)), math.nan), \
        np.full((len(seeds), len(budget.lambdas)), math.nan)
    for i, seed in enumerate(seeds):
        for j, lmbda in enumerate(budget.lambdas):
            off = _series(runs[OFF][seed]["history"], lmbda, "val_loss")
            on = _series(runs[configuration][seed]["history"], lmbda, "val_loss")
            target = off[-1]
            steps_off, steps_on = reach_epoch(off, target) * steps, reach_epoch(on, target) * steps
            speedups[i, j] = steps_off / steps_on if math.isfinite(steps_on) else math.nan
            loss_ratios[i, j] = on[-1] / off[-1]
            pairs.append({"seed": seed, "lmbda": lmbda, "off_final_val_loss": target, "final_val_loss": on[-1],
                          "steps_off": steps_off, "steps": steps_on,
                          "speedup": speedups[i, j] if math.isfinite(speedups[i, j]) else None})
    reached = int(np.isfinite(speedups).sum())
    result = {"pairs": pairs, "reached": reached, "n": speedups.size}
    if reached == speedups.size:
        point, low, high = seed_bootstrap(speedups)
        result.update(speedup=point, speedup_ci=[low, high], speedup_text=f"{point:.2f}× [{low:.2f}, {high:.2f}]")
    else:
        result.update(speedup=None, speedup_ci=None,
                      speedup_text=f"not reached ({speedups.size - reached} of {speedups.size} λ×seed)")
    point, low, high = seed_bootstrap(loss_ratios)
    result.update(final_loss_ratio=point, final_loss_ratio_ci=[low, high])
    return result


def mean_interval(per_seed: list[float], n_boot: int = N_BOOT, rng_seed: int = RNG_SEED) -> tuple[float, float, float]:
    """Mean of per-seed values and its 95 % percentile bootstrap interval over seeds (one seed: no interval)."""
    from scipy.stats import bootstrap

    values = np.asarray(per_seed, dtype=float)
    point = float(values.mean())
    if len(values) < 2 or not np.isfinite(values).all():
        return point, math.nan, math.nan
    ci = bootstrap((values,), np.mean, method="percentile", n_resamples=n_boot, confidence_level=CONFIDENCE,
                   random_state=rng_seed).confidence_interval
    return point, float(ci.low), float(ci.high)


def stability(runs: dict, budget: Budget) -> dict:
    """Per configuration: the largest drop of validation PSNR from one epoch to the next over every
    λ × seed (dB, positive = a drop), and the λ × seed where it happened."""
    result = {}
    for configuration, seeds in runs.items():
        worst, where = -math.inf, None
        for seed, run in seeds.items():
            for lmbda in budget.lambdas:
                psnr = _series(run["history"], lmbda, "val_psnr")
                for e in range(1, len(psnr)):
                    if psnr[e - 1] - psnr[e] > worst:
                        worst, where = psnr[e - 1] - psnr[e], {"seed": seed, "lmbda": lmbda, "epoch": e + 1}
        result[configuration] = {"max_drop_db": worst if math.isfinite(worst) else None, "at": where}
    return result


def inter_scale_r2(runs: dict, budget: Budget, n_boot: int = N_BOOT) -> dict:
    """Last-epoch predictability per configuration: the held-out R² (``val_inter_scale_r2_<pair>``)
    and the cross-image CKA (``val_inter_scale_cka_<pair>``), per pair (mean over λ and seeds) and
    as the mean over pairs and λ per seed, with its interval over seeds. A pair whose coarse scale
    codes nothing on the validation images has no value (NaN): means are over the defined values,
    and ``defined`` says how many of the pair × λ × seed values that is."""
    result = {}
    for configuration, seeds in runs.items():
        last = {seed: run["history"][-1] for seed, run in seeds.items()}
        pairs = sorted({key.split("val_inter_scale_r2_")[1] for m in last.values() for key in m
                        if "/val_inter_scale_r2_" in key})
        entry: dict = {"pairs": pairs}
        for measure in MEASURES:
            def values(ms: list[dict], ps: list[str]) -> np.ndarray:
                return np.array([float(m.get(f"lambda={lmbda:g}/val_inter_scale_{measure}_{pair}", math.nan))
                                 for m in ms for pair in ps for lmbda in budget.lambdas])

            def mean(v: np.ndarray) -> float:
                return float(v[np.isfinite(v)].mean()) if np.isfinite(v).any() else math.nan

            every = values(list(last.values()), pairs)
            per_pair = {pair: mean(values(list(last.values()), [pair])) for pair in pairs}
            per_seed = {seed: mean(values([m], pairs)) for seed, m in last.items()}
            defined = [v for v in per_seed.values() if math.isfinite(v)]
            point, low, high = mean_interval(defined, n_boot) if defined else (math.nan,) * 3
            entry[measure] = {"per_pair": per_pair, "per_seed": per_seed, "mean": point, "ci": [low, high],
                              "defined": int(np.isfinite(every).sum()), "of": int(every.size)}
        result[configuration] = entry
    return result


def bd_rates(points, configurations: list[str]) -> dict:
    """BD-rate vs off (test split, real bpp) of every other configuration, with the report's interval and status."""
    from analysis.verdict import bd_table

    table = bd_table(points, OFF).set_index("configuration")
    return {configuration: {key: value.item() if hasattr(value, "item") else value
                            for key, value in table.loc[configuration].items()}
            for configuration in configurations if configuration != OFF}


def rising_together(bpp, psnr) -> bool:
    """Rate and PSNR rise strictly together along the curve's order (what a BD-rate needs)."""
    return bool((np.diff(bpp) > 0).all() and (np.diff(psnr) > 0).all())


def val_curves(runs: dict, budget: Budget) -> dict[str, dict]:
    """Per configuration: the last-epoch validation curve (bpp and PSNR per λ, mean over seeds) and
    whether it is monotone, and how many of the seeds' own curves are (the training criterion: a
    model that does not trade rate for distortion across λ is not yet a codec)."""
    def monotone(bpp: np.ndarray, psnr: np.ndarray) -> bool:
        order = np.argsort(budget.lambdas)
        return rising_together(bpp[order], psnr[order])

    result = {}
    for configuration, seeds in runs.items():
        curves = {seed: np.array([[_series(run["history"], lmbda, metric)[-1] for lmbda in budget.lambdas]
                                  for metric in ("val_bpp", "val_psnr")]) for seed, run in seeds.items()}
        mean = np.mean(list(curves.values()), axis=0)
        result[configuration] = {"monotone": monotone(*mean),
                                 "seeds_monotone": sum(monotone(*c) for c in curves.values()), "seeds": len(curves),
                                 "points": [{"lmbda": lmbda, "bpp": float(b), "psnr": float(q)}
                                            for lmbda, b, q in zip(budget.lambdas, *mean)]}
    return result


def test_curves(points, configurations: list[str]) -> dict[str, dict]:
    """Per configuration: the mean test curve (per λ, bpp and PSNR over seeds and images) and whether
    it is monotone (rate and PSNR rising strictly together, what a BD-rate needs)."""
    from analysis.points import mean_curve

    curves = {}
    for configuration in configurations:
        curve = mean_curve(points, configuration).sort_values("bpp")
        monotone = rising_together(curve["bpp"].to_numpy(), curve["psnr"].to_numpy())
        curves[configuration] = {"monotone": monotone, "points": curve.to_dict("records")}
    return curves


# ----------------------------------------------------------------------------- report

def measure(budget: Budget, out: Path, n_boot: int = N_BOOT, log: Callable[[str], None] = print) -> dict:
    """Train, code the test set, measure; writes DIR/points.csv and returns the results dict."""
    budget = budget.validated()
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    runs = train_all(budget, out, log)
    points, images = code_test_set(runs, budget, log)
    points.to_csv(out / "points.csv", index=False)
    models = {}
    for model in budget.models:
        mine = points[points["model"] == model]
        names = list(budget.configurations())
        models[model] = {
            "convergence": {c: convergence(runs[model], budget, c) for c in names if c != OFF},
            "bd_rate_vs_off": bd_rates(mine, names),
            "inter_scale_r2": inter_scale_r2(runs[model], budget, n_boot),
            "test_curves": test_curves(mine, names),
            "val_curves": val_curves(runs[model], budget),
            "stability": stability(runs[model], budget),
            "train_seconds": {c: sum(r["seconds"] for r in s.values()) for c, s in runs[model].items()},
        }
    import torch

    return {
        "date": dt.datetime.now().isoformat(timespec="minutes"),
        "machine": (f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__} "
                    f"({torch.get_num_threads()} threads), "
                    + (torch.cuda.get_device_name() if budget.device.startswith("cuda") else "no GPU used")),
        "budget": {**asdict(budget), "truncation_epochs": budget.truncation,
                   "configurations": budget.configurations()},
        "seeds": list(range(budget.seeds)),
        "phase2_aligner": TrainConfig.phase2_aligner,
        "test_images": images,
        "n_boot": n_boot,
        "wall_seconds": time.perf_counter() - start,
        "models": models,
    }


def _bd_text(bd: dict) -> str:
    if bd["status"].startswith("undefined"):
        value = "" if not math.isfinite(bd["bd_rate_vs_off"]) else f"{bd['bd_rate_vs_off']:+.1f} %, "
        return f"{value}{bd['status']}"
    return f"{bd['bd_rate_vs_off']:+.1f} % [{bd['ci_low']:+.1f}, {bd['ci_high']:+.1f}] ({bd['status']})"


def table(results: dict) -> str:
    """The markdown table: one column per model, one block of rows per configuration."""
    models = list(results["models"])
    m = results["models"]
    names = list(results["budget"]["configurations"])

    def row(name: str, cell: Callable[[dict], str]) -> str:
        return f"| {name} | " + " | ".join(cell(m[model]) for model in models) + " |"

    def off(r: dict) -> list[dict]:
        return r["test_curves"][OFF]["points"]

    def predictability(r: dict, configuration: str, measure: str) -> str:
        entry = r["inter_scale_r2"][configuration][measure]
        low, high = entry["ci"]
        return (f"{entry['mean']:.3f}" + (f" [{low:.3f}, {high:.3f}]" if math.isfinite(low) else "")
                + ("" if entry["defined"] == entry["of"] else f" ({entry['defined']} of {entry['of']} defined)"))

    def drop(r: dict, configuration: str) -> str:
        s = r["stability"][configuration]
        return "–" if s["max_drop_db"] is None else f"{s['max_drop_db']:+.2f}"

    lines = ["| measure | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for c in names[1:]:
        lines += [
            row(f"{c}: speed-up, steps to off's final val loss (steps_off / steps_{c}, geo. mean, 95 % CI over seeds)",
                lambda r, c=c: r["convergence"][c]["speedup_text"]),
            row(f"{c}: λ×seed pairs reaching off's final val loss",
                lambda r, c=c: f"{r['convergence'][c]['reached']} / {r['convergence'][c]['n']}"),
            row(f"{c}: final val loss / off (geo. mean, 95 % CI over seeds)",
                lambda r, c=c: "{:.3f} [{:.3f}, {:.3f}]".format(r["convergence"][c]["final_loss_ratio"],
                                                              *r["convergence"][c]["final_loss_ratio_ci"])),
            row(f"{c}: BD-rate vs off, test split, real bpp (95 % CI)", lambda r, c=c: _bd_text(r["bd_rate_vs_off"][c])),
        ]
    lines += [
        row("predictability R², cross (one map shared by all images; val, last epoch, mean of pairs × λ, 95 % CI over seeds): "
            + " → ".join(names), lambda r: " → ".join(predictability(r, c, "r2") for c in names)),
        row("within-image R² (a map per image, same latents): " + " → ".join(names),
            lambda r: " → ".join(predictability(r, c, "within") for c in names)),
        row("neighbourhood R² (3 × 3 neighbourhood and magnitudes, same latents): " + " → ".join(names),
            lambda r: " → ".join(predictability(r, c, "neighbourhood") for c in names)),
        row("cross-image CKA (same latents): " + " → ".join(names),
            lambda r: " → ".join(predictability(r, c, "cka") for c in names)),
        row("predictability R² per pair (mean over λ × seeds): " + " → ".join(names),
            lambda r: "; ".join(f"{pair} " + " → ".join(f"{r['inter_scale_r2'][c]['r2']['per_pair'].get(pair, math.nan):.3f}"
                                                       for c in names)
                                for pair in r["inter_scale_r2"][OFF]["pairs"])),
        row("last-epoch val RD curve monotone? mean over seeds (seeds' own curves) " + " / ".join(names),
            lambda r: " / ".join(("yes" if r["val_curves"][c]["monotone"] else "no")
                                 + f" ({r['val_curves'][c]['seeds_monotone']} of {r['val_curves'][c]['seeds']})"
                                 for c in names)),
        row("mean test RD curve monotone? " + " / ".join(names),
            lambda r: " / ".join("yes" if r["test_curves"][c]["monotone"] else "no" for c in names)),
        row("largest val PSNR drop between epochs (dB, any λ × seed): " + " / ".join(names),
            lambda r: " / ".join(drop(r, c) for c in names)),
        row("off on test: bpp / PSNR range over λ",
            lambda r: "{:.3f}–{:.3f} bpp, {:.1f}–{:.1f} dB".format(
                min(p["bpp"] for p in off(r)), max(p["bpp"] for p in off(r)),
                min(p["psnr"] for p in off(r)), max(p["psnr"] for p in off(r)))),
        row("training time " + " / ".join(names) + " (s, all seeds × λ)",
            lambda r: " / ".join(f"{r['train_seconds'][c]:.0f}" for c in names)),
    ]
    b = results["budget"]
    train = sum(sum(r["train_seconds"].values()) for r in m.values())
    header = (f"{results['date']}, {results['machine']}. Budget: {b['epochs']} epochs × {b['steps_per_epoch']} steps, "
              f"batch {b['batch_size']}, patch {b['patch_size']}, lr {b['learning_rate']:g}, "
              f"λ {' '.join(f'{x:g}' for x in b['lambdas'])} (MSE), seeds {results['seeds']}, "
              f"Phase 1 truncation {b['truncation_epochs']} epochs; Phase 2 aligner {results['phase2_aligner']}; "
              f"test images: {', '.join(results['test_images'])}; "
              f"training {train / 60:.1f} min (sum over curves, measured when trained), this invocation "
              f"{results['wall_seconds'] / 60:.1f} min (cached curves are reused).")
    return header + "\n\n" + "\n".join(lines) + "\n"


def write(results: dict, out: Path) -> str:
    text = table(results)
    (out / "positive_control.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    (out / "positive_control.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m benchmarks.positive_control", description=__doc__.splitlines()[0])
    d = Budget()
    p.add_argument("--models", nargs="+", default=list(d.models))
    p.add_argument("--configurations", nargs="+", default=list(d.configurations_run),
                   help=f"off first, then any of {', '.join(CONFIGURATIONS[1:])}")
    p.add_argument("--seeds", type=int, default=d.seeds)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--steps-per-epoch", type=int, default=d.steps_per_epoch)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--patch-size", type=int, default=d.patch_size)
    p.add_argument("--learning-rate", type=float, default=d.learning_rate)
    p.add_argument("--lambdas", type=float, nargs="+", default=list(d.lambdas))
    p.add_argument("--truncation-epochs", type=int, help="Phase 1 length (default: half the epochs)")
    p.add_argument("--train-dataset", help="default: the built-in train split")
    p.add_argument("--val-dataset", help="default: the built-in val split")
    p.add_argument("--test-dataset", help="default: the built-in test split")
    p.add_argument("--device", default="cpu")
    p.add_argument("--n-boot", type=int, default=N_BOOT)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--out", default="runs/positive_control", help="output folder (default: runs/positive_control)")
    a = p.parse_args(argv)
    if a.n_boot < 100:
        raise InputError(f"--n-boot must be >= 100, got {a.n_boot}")
    if a.threads is not None:
        if a.threads < 1:
            raise InputError(f"--threads must be >= 1, got {a.threads}")
        import torch

        torch.set_num_threads(a.threads)
    budget = Budget(models=tuple(a.models), configurations_run=tuple(a.configurations), seeds=a.seeds, epochs=a.epochs, steps_per_epoch=a.steps_per_epoch,
                    batch_size=a.batch_size, patch_size=a.patch_size, learning_rate=a.learning_rate,
                    lambdas=tuple(a.lambdas), truncation_epochs=a.truncation_epochs,
                    train_dataset=a.train_dataset, val_dataset=a.val_dataset, test_dataset=a.test_dataset,
                    device=a.device)
    out = Path(a.out)
    results = measure(budget, out, a.n_boot)
    print(write(results, out))
    print(f"-> {out / 'positive_control.json'}, {out / 'positive_control.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
