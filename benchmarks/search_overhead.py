"""Ray Tune vs the plain loop, and ASHA vs FIFO, on the same small CPU workload.

    python -m benchmarks.search_overhead [--epochs 4] [--space ablation_delta] [--lambdas 0.0035 0.0067 0.013 0.025]
                                         [--steps-per-epoch 16] [--skip-tune-vs-plain]

- tune/plain: wall time of a one-trial ``Tuner.fit`` (Ray already initialised) over the
  plain ``train_curve()`` call for the same configuration, λs and epochs; also the trial's
  own ``time_total_s`` (which excludes worker start-up).
- ASHA/FIFO, one run each of ``search.run`` on an enumerated space (default: the
  ``ablation_delta`` grid, 10 configurations after inert ones are removed):
  epochs spent (sum over trials; a trial trains all its λ models each epoch), whether both
  find the same best configuration (lowest final ``rd_score`` among finished ones), and the
  Spearman rank correlation over configurations of the last reported ``rd_score`` (ASHA's
  at the epoch it stopped a configuration, FIFO's at the last epoch): 1 means ASHA's early
  ranking is the full-budget ranking.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from trainable.config import TrainConfig
from trainable.curve import CurveConfig, train_curve

ROOT = Path(__file__).resolve().parents[1]
CONFIG = TrainConfig(model_name="HPCM_Tiny", batch_size=8, patch_size=128, steps_per_epoch=16, learning_rate=3e-3,
                     num_workers=0, real_bpp=False, save_best=False, lmbda=0.013)


def tune_vs_plain(epochs: int, lambdas: tuple[float, ...] = (0.0067, 0.025)) -> dict:
    import ray
    from ray import tune

    from trainable.tune import tune_trainable

    cfg = replace(CONFIG, epochs=epochs)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        train_curve(CurveConfig(replace(cfg, save_path=f"{tmp}/plain"), lambdas), lambda m, d: None)
        plain = time.perf_counter() - start
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            params = {k: v for k, v in cfg.to_dict().items() if k not in ("lmbda", "save_path")}
            params.update(lambdas=list(lambdas), configuration="off", is_off=True)
            tuner = tune.Tuner(tune.with_resources(tune_trainable, {"cpu": 2}), param_space=params,
                               run_config=tune.RunConfig(storage_path=tmp, name="one", verbose=0))
            start = time.perf_counter()
            result = tuner.fit()[0]
            fit = time.perf_counter() - start
        finally:
            ray.shutdown()
    trial = result.metrics["time_total_s"]
    return {"epochs": epochs, "lambdas": list(lambdas), "plain_s": plain, "tune_fit_s": fit, "tune_trial_s": trial,
            "ratio_fit_over_plain": fit / plain, "ratio_trial_over_plain": trial / plain}


def asha_vs_fifo(epochs: int, space: str = "ablation_delta",
                 lambdas: tuple[float, ...] = (0.0035, 0.0067, 0.013, 0.025), steps_per_epoch: int = 16) -> dict:
    out, tables = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for scheduler in ("asha", "fifo"):
            cmd = [sys.executable, "-m", "search.run", "--space", space, "--preset", "cpu-smoke",
                   "--scheduler", scheduler, "--lambdas", *map(str, lambdas), "--max-epochs", str(epochs),
                   "--grace-epochs", "1", "--steps-per-epoch", str(steps_per_epoch), "--storage-path", tmp,
                   "--name", scheduler, "--init-weights", "none", "--learning-rate", "3e-3"]
            start = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
            table = pd.read_csv(Path(tmp) / scheduler / "results.csv")
            tables[scheduler] = table.set_index("configuration")
            done = table[table["status"] == "TERMINATED"]
            best = done.loc[done["rd_score"].idxmin()]
            out[scheduler] = {"trials": len(table), "stopped": int((table["status"] == "STOPPED").sum()),
                              "epochs_spent": int(table["epochs_run"].sum()), "best": best["configuration"],
                              "best_rd_score": float(best["rd_score"]), "wall_s": time.perf_counter() - start}
    both = tables["asha"][["rd_score"]].join(tables["fifo"][["rd_score"]], lsuffix="_asha", rsuffix="_fifo")
    ranks = both.rank()
    out["ratio_epochs_asha_over_fifo"] = out["asha"]["epochs_spent"] / out["fifo"]["epochs_spent"]
    out["same_best"] = out["asha"]["best"] == out["fifo"]["best"]
    out["spearman_rd_score"] = float(ranks["rd_score_asha"].corr(ranks["rd_score_fifo"]))
    out["setting"] = {"space": space, "lambdas": list(lambdas), "epochs": epochs, "steps_per_epoch": steps_per_epoch}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=4, help="tune/plain epochs; ASHA/FIFO runs twice as many")
    p.add_argument("--space", default="ablation_delta", help="an enumerated space for ASHA vs FIFO")
    p.add_argument("--lambdas", type=float, nargs="+", default=[0.0035, 0.0067, 0.013, 0.025])   # a search needs 4
    p.add_argument("--steps-per-epoch", type=int, default=16)
    p.add_argument("--skip-tune-vs-plain", action="store_true")
    a = p.parse_args()
    results = {}
    if not a.skip_tune_vs_plain:
        with contextlib.redirect_stdout(sys.stderr):   # Tune's tables: keep stdout for the JSON
            results["tune_vs_plain"] = tune_vs_plain(a.epochs)
    results["asha_vs_fifo"] = asha_vs_fifo(2 * a.epochs, a.space, tuple(a.lambdas), a.steps_per_epoch)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
