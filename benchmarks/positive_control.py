"""The positive control: do the two regularizers do anything measurable, per model, at this budget?

    python -m benchmarks.positive_control [--models DHIC_Tiny HPCM_Tiny] [--seeds 2] [--epochs 6]
        [--steps-per-epoch 20] [--lambdas 0.002 0.006 0.018 0.054] [--out DIR]

For each model, three configurations are trained with ``trainable.curve.train_curve`` at every λ,
with the same seeds (0 … N−1):

* ``off``: both regularizers off;
* ``phase1``: Phase 1 on, paper-like (tau 0.05 → 1.0 over the first half of the epochs);
* ``phase2``: Phase 2 repel at the paper's δ = 0.1 (default aligner and scale latents).

Measured, per model:

* Phase 1's convergence claim: for every λ and seed, the (linearly interpolated) epoch at which a
  configuration's validation loss first reaches off's *final* validation loss (the same rule for off
  itself); speed-up = epochs_off / epochs_phase1. Geometric mean over λ × seed, 95 % percentile
  bootstrap over seeds. When Phase 1 does not reach it for some λ × seed, that is the answer
  ("not reached"), not a number. Also the final validation-loss ratio phase1 / off.
* BD-rate vs off of ``phase2`` (and ``phase1``) on the held-out test split, real bitstreams per image
  (``analysis.evaluate``'s coder), with the report's interval (``analysis.interval.bd_interval``).
* The held-out inter-scale R² of the last epoch (``lambda=<λ>/val_inter_scale_r2_<pair>``),
  to show whether Phase 2 changed the latents at all.

Writes ``DIR/positive_control.json``, ``DIR/positive_control.md`` and ``DIR/points.csv`` and prints
the table. Trained curves are kept in ``DIR/runs/`` and reused when the script runs again with the
same settings. Bad input: one line on stderr, exit status 2.
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
OFF, PHASE1, PHASE2 = "off", "phase1", "phase2"
N_BOOT, RNG_SEED, CONFIDENCE = 2000, 0, 0.95
CHECKPOINT = "checkpoint_000000"     # the layout analysis.evaluate reads final models from


@dataclass(frozen=True)
class Budget:
    """What is trained: models × configurations × seeds × λ, each for ``epochs`` × ``steps_per_epoch``."""

    models: tuple[str, ...] = MODELS
    seeds: int = 2
    epochs: int = 6
    steps_per_epoch: int = 20
    batch_size: int = 8
    patch_size: int = 128
    learning_rate: float = 3e-3      # DHIC_Tiny diverges (NaN) at 1e-2
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
        return {
            OFF: {},
            PHASE1: {"spectral_reg": True, "tau_init": 0.05, "tau_final": 1.0, "truncation_epochs": self.truncation},
            PHASE2: {"phase2_reg": True, "delta": 0.1, "phase2_sign": "repel"},
        }

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
    """Train (or reuse) every model × configuration × seed curve; {model: {configuration: {seed: run}}},
    run = {"dir": trial directory, "history": [per-epoch curve metrics], "seconds": training time}."""
    from trainable.curve import CurveConfig, train_curve

    runs: dict = {}
    for model in budget.models:
        for configuration in budget.configurations():
            for seed in range(budget.seeds):
                trial_dir = out / "runs" / model / configuration / f"seed{seed}"
                cfg = budget.train_config(model, configuration, seed, trial_dir / CHECKPOINT)
                record = trial_dir / "history.json"
                settings = {**cfg.to_dict(), "lambdas": list(budget.lambdas)}
                saved = json.loads(record.read_text()) if record.is_file() else None
                if saved is None or saved.get("settings") != settings:
                    history: list[dict] = []
                    start = time.perf_counter()
                    train_curve(CurveConfig(cfg, tuple(budget.lambdas)), lambda m, d: history.append(dict(m)))
                    saved = {"settings": settings, "history": history, "seconds": time.perf_counter() - start}
                    record.write_text(json.dumps(saved, indent=1) + "\n")
                    log(f"trained {model} {configuration} seed {seed}: {saved['seconds']:.0f} s, "
                        f"rd_score {history[-1]['rd_score']:.4f}")
                runs.setdefault(model, {}).setdefault(configuration, {})[seed] = {
                    "dir": trial_dir, "history": saved["history"], "seconds": saved["seconds"]}
    return runs


def code_test_set(runs: dict, budget: Budget, log: Callable[[str], None] = print):
    """Real-bitstream points on the test split for every final model: analysis.evaluate's columns + model."""
    import pandas as pd
    import torch

    from analysis.evaluate import code_images
    from trainable.data import dataset_manifest, resolve_dataset

    manifest = dataset_manifest(resolve_dataset(budget.test_dataset, "test"))
    images = [(path, path.relative_to(manifest.root).as_posix(), size)
              for path, size in zip(manifest.files, manifest.sizes)]
    rows = []
    for model, configurations in runs.items():
        for configuration, seeds in configurations.items():
            for seed, run in seeds.items():
                trial = {"trial_id": f"{model}/{configuration}/seed{seed}", "trial_dir": str(run["dir"]),
                         "configuration": configuration, "is_off": configuration == OFF, "seed": seed,
                         "config/model_name": model}
                for lmbda in budget.lambdas:
                    rows += [{"model": model, **row} for row in code_images(trial, lmbda, images, torch.device(budget.device))]
            log(f"coded the test set ({len(images)} images) with {model} {configuration}")
    return pd.DataFrame(rows), [name for _, name, _ in images]


# ----------------------------------------------------------------------------- measures

def reach_epoch(losses: list[float], target: float) -> float:
    """First (linearly interpolated) epoch at which ``losses`` (epochs 1, 2, …) is <= ``target``; NaN if never."""
    for e, value in enumerate(losses, start=1):
        if math.isfinite(value) and value <= target:
            if e == 1:
                return 1.0
            before = losses[e - 2]
            return e - 1 + (before - target) / (before - value) if before != value else float(e)
    return math.nan


def _series(history: list[dict], lmbda: float, metric: str) -> list[float]:
    from trainable.curve import lambda_key

    return [float(m.get(f"{lambda_key(lmbda)}/{metric}", math.nan)) for m in history]


def seed_bootstrap(values: np.ndarray, n_boot: int = N_BOOT, rng_seed: int = RNG_SEED) -> tuple[float, float, float]:
    """Geometric mean of positive ``values`` [seed, λ] and its percentile interval over resampled
    seeds (every seed has every λ, so the mean log is the mean of the per-seed mean logs)."""
    from scipy.stats import bootstrap

    per_seed = np.log(values).mean(axis=1)
    point = float(np.exp(per_seed.mean()))
    if len(per_seed) < 2:
        return point, point, point
    ci = bootstrap((per_seed,), np.mean, method="percentile", n_resamples=n_boot, confidence_level=CONFIDENCE,
                   random_state=rng_seed).confidence_interval
    return point, float(np.exp(ci.low)), float(np.exp(ci.high))


def convergence(runs: dict, budget: Budget) -> dict:
    """Phase 1 vs off: epochs to reach off's final validation loss, per λ × seed, and their ratio."""
    seeds = sorted(runs[OFF])
    pairs, speedups, loss_ratios = [], np.full((len(seeds), len(budget.lambdas)), math.nan), \
        np.full((len(seeds), len(budget.lambdas)), math.nan)
    for i, seed in enumerate(seeds):
        for j, lmbda in enumerate(budget.lambdas):
            off = _series(runs[OFF][seed]["history"], lmbda, "val_loss")
            on = _series(runs[PHASE1][seed]["history"], lmbda, "val_loss")
            target = off[-1]
            epochs_off, epochs_on = reach_epoch(off, target), reach_epoch(on, target)
            speedups[i, j] = epochs_off / epochs_on if math.isfinite(epochs_on) else math.nan
            loss_ratios[i, j] = on[-1] / off[-1]
            pairs.append({"seed": seed, "lmbda": lmbda, "off_final_val_loss": target, "phase1_final_val_loss": on[-1],
                          "epochs_off": epochs_off, "epochs_phase1": epochs_on,
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


def inter_scale_r2(runs: dict, budget: Budget) -> dict:
    """Last-epoch held-out inter-scale R² per configuration: per pair and the mean over pairs,
    each averaged over λ and seeds (per-seed means kept)."""
    result = {}
    for configuration, seeds in runs.items():
        last = {seed: run["history"][-1] for seed, run in seeds.items()}
        pairs = sorted({key.split("val_inter_scale_r2_")[1] for m in last.values() for key in m
                        if "/val_inter_scale_r2_" in key})
        per_pair = {pair: float(np.mean([m[f"lambda={lmbda:g}/val_inter_scale_r2_{pair}"]
                                         for m in last.values() for lmbda in budget.lambdas])) for pair in pairs}
        per_seed = {seed: float(np.mean([m[f"lambda={lmbda:g}/val_inter_scale_r2_{pair}"]
                                         for pair in pairs for lmbda in budget.lambdas])) for seed, m in last.items()}
        result[configuration] = {"per_pair": per_pair, "per_seed": per_seed,
                                 "mean": float(np.mean(list(per_pair.values()))) if pairs else math.nan}
    return result


def bd_rates(points) -> dict:
    """BD-rate vs off (test split, real bpp) of phase1 and phase2, with the report's interval and status."""
    from analysis.verdict import bd_table

    table = bd_table(points, OFF).set_index("configuration")
    return {configuration: {key: value.item() if hasattr(value, "item") else value
                            for key, value in table.loc[configuration].items()}
            for configuration in (PHASE1, PHASE2)}


def test_curves(points) -> dict[str, dict]:
    """Per configuration: the mean test curve (per λ, bpp and PSNR over seeds and images) and whether
    it is monotone (rate and PSNR rising strictly together, what a BD-rate needs)."""
    from analysis.points import mean_curve

    curves = {}
    for configuration in (OFF, PHASE1, PHASE2):
        curve = mean_curve(points, configuration).sort_values("bpp")
        monotone = bool((np.diff(curve["bpp"]) > 0).all() and (np.diff(curve["psnr"]) > 0).all())
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
        models[model] = {
            "convergence": convergence(runs[model], budget),
            "bd_rate_vs_off": bd_rates(mine),
            "inter_scale_r2": inter_scale_r2(runs[model], budget),
            "test_curves": test_curves(mine),
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
    """The markdown table: one column per model."""
    models = list(results["models"])
    m = results["models"]

    def row(name: str, cell: Callable[[dict], str]) -> str:
        return f"| {name} | " + " | ".join(cell(m[model]) for model in models) + " |"

    def off(r: dict) -> list[dict]:
        return r["test_curves"][OFF]["points"]

    def r2(r: dict, configuration: str) -> str:
        return f"{r['inter_scale_r2'][configuration]['mean']:.3f}"

    lines = [
        "| measure | " + " | ".join(models) + " |",
        "|---|" + "---|" * len(models),
        row("Phase 1: speed-up to off's final val loss (epochs_off / epochs_phase1, geo. mean, 95 % CI over seeds)",
            lambda r: r["convergence"]["speedup_text"]),
        row("Phase 1: λ×seed pairs reaching off's final val loss",
            lambda r: f"{r['convergence']['reached']} / {r['convergence']['n']}"),
        row("Phase 1: final val loss / off (geo. mean, 95 % CI over seeds)",
            lambda r: "{:.3f} [{:.3f}, {:.3f}]".format(r["convergence"]["final_loss_ratio"],
                                                      *r["convergence"]["final_loss_ratio_ci"])),
        row("Phase 1: BD-rate vs off, test split, real bpp (95 % CI)", lambda r: _bd_text(r["bd_rate_vs_off"][PHASE1])),
        row("Phase 2 repel δ=0.1: BD-rate vs off, test split, real bpp (95 % CI)",
            lambda r: _bd_text(r["bd_rate_vs_off"][PHASE2])),
        row("inter-scale R² (val, last epoch, mean of pairs): off → Phase 2",
            lambda r: f"{r2(r, OFF)} → {r2(r, PHASE2)}"),
        row("mean test RD curve monotone? off / Phase 1 / Phase 2",
            lambda r: " / ".join("yes" if r["test_curves"][c]["monotone"] else "no" for c in (OFF, PHASE1, PHASE2))),
        row("off on test: bpp / PSNR range over λ",
            lambda r: "{:.3f}–{:.3f} bpp, {:.1f}–{:.1f} dB".format(
                min(p["bpp"] for p in off(r)), max(p["bpp"] for p in off(r)),
                min(p["psnr"] for p in off(r)), max(p["psnr"] for p in off(r)))),
        row("training time off / phase1 / phase2 (s, all seeds × λ)",
            lambda r: " / ".join(f"{r['train_seconds'][c]:.0f}" for c in (OFF, PHASE1, PHASE2))),
    ]
    b = results["budget"]
    train = sum(sum(r["train_seconds"].values()) for r in m.values())
    header = (f"{results['date']}, {results['machine']}. Budget: {b['epochs']} epochs × {b['steps_per_epoch']} steps, "
              f"batch {b['batch_size']}, patch {b['patch_size']}, lr {b['learning_rate']:g}, "
              f"λ {' '.join(f'{x:g}' for x in b['lambdas'])} (MSE), seeds {results['seeds']}, "
              f"Phase 1 truncation {b['truncation_epochs']} epochs; test images: {', '.join(results['test_images'])}; "
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
    p.add_argument("--out", default="runs/positive_control", help="output folder (default: runs/positive_control)")
    a = p.parse_args(argv)
    if a.n_boot < 100:
        raise InputError(f"--n-boot must be >= 100, got {a.n_boot}")
    budget = Budget(models=tuple(a.models), seeds=a.seeds, epochs=a.epochs, steps_per_epoch=a.steps_per_epoch,
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
