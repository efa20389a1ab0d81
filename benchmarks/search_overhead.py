"""Ray Tune vs the plain loop, and ASHA vs FIFO, on the same small CPU workload.

    python -m benchmarks.search_overhead [--epochs 4]

- tune/plain: wall time of a one-trial ``Tuner.fit`` (Ray already initialised) over the
  plain ``train()`` call for the same config and epochs; also the trial's own
  ``time_total_s`` (which excludes worker start-up).
- ASHA/FIFO: epochs spent by ASHA over epochs spent by FIFO on the same grid (one λ,
  the ``ablation_delta`` grid: 4 δ x 3 distances), and whether both pick the same best
  configuration.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from trainable.config import TrainConfig
from trainable.trainer import train

CONFIG = TrainConfig(model_name="HPCM_Tiny", batch_size=8, patch_size=128, steps_per_epoch=16, learning_rate=3e-3,
                     num_workers=0, real_bpp=False, save_best=False, lmbda=0.013)


def tune_vs_plain(epochs: int) -> dict:
    import ray
    from ray import tune

    from trainable.tune import tune_trainable

    cfg = replace(CONFIG, epochs=epochs)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        train(replace(cfg, save_path=f"{tmp}/plain"), lambda m, d: None)
        plain = time.perf_counter() - start
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            params = {k: v for k, v in cfg.to_dict().items() if k != "save_path"}
            tuner = tune.Tuner(tune.with_resources(tune_trainable, {"cpu": 2}), param_space=params,
                               run_config=tune.RunConfig(storage_path=tmp, name="one", verbose=0))
            start = time.perf_counter()
            result = tuner.fit()[0]
            fit = time.perf_counter() - start
        finally:
            ray.shutdown()
    trial = result.metrics["time_total_s"]
    return {"epochs": epochs, "plain_s": plain, "tune_fit_s": fit, "tune_trial_s": trial,
            "ratio_fit_over_plain": fit / plain, "ratio_trial_over_plain": trial / plain}


def asha_vs_fifo(epochs: int) -> dict:
    import subprocess
    import sys

    import pandas as pd

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for scheduler in ("asha", "fifo"):
            cmd = [sys.executable, "-m", "search.run", "--space", "ablation_delta", "--preset", "cpu-smoke",
                   "--scheduler", scheduler, "--lambdas", "0.013", "--max-epochs", str(epochs), "--steps-per-epoch", "16",
                   "--storage-path", tmp, "--name", scheduler]
            subprocess.run(cmd, check=True, capture_output=True, cwd=Path(__file__).resolve().parents[1])
            table = pd.read_csv(Path(tmp) / scheduler / "results.csv")
            best = table.loc[table["best_val_loss"].idxmin()]
            out[scheduler] = {"trials": len(table), "epochs_spent": int(table["epochs_run"].sum()),
                              "best": f"delta={best['config/delta']}, {best['config/distance']}",
                              "best_val_loss": float(best["best_val_loss"])}
    out["ratio_epochs_asha_over_fifo"] = out["asha"]["epochs_spent"] / out["fifo"]["epochs_spent"]
    out["same_best"] = out["asha"]["best"] == out["fifo"]["best"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=4)
    a = p.parse_args()
    print(json.dumps({"tune_vs_plain": tune_vs_plain(a.epochs), "asha_vs_fifo": asha_vs_fifo(2 * a.epochs)}, indent=2))


if __name__ == "__main__":
    main()
