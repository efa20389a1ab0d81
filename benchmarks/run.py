"""Every benchmark in one run: one table of ratios, and benchmarks/results.json.

    python -m benchmarks.run [--official PATH_TO_LIC-HPCM] [--quick]

Ratios are taken within this one run on this one machine; absolute seconds are only
for context. Without the official HPCM code that comparison is skipped with a message.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch

from . import hpcm_vs_official, loader, memory, regularizer_overhead, search_overhead

RESULTS = Path(__file__).with_name("results.json")


def _rate_fidelity(epochs: int) -> dict:
    """Real-bitstream bpp over estimated bpp on the sample validation images after a short run."""
    import tempfile

    from trainable.trainer import train

    with tempfile.TemporaryDirectory() as tmp:
        cfg = replace(search_overhead.CONFIG, epochs=epochs, real_bpp=True, save_path=tmp)
        last = train(cfg, lambda m, d: None)
    return {"epochs": epochs, "val_bpp": last["val_bpp"], "real_bpp": last["real_bpp"],
            "ratio_real_over_estimated": last["real_bpp"] / last["val_bpp"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official", help="LIC-HPCM checkout (default: $HPCM_OFFICIAL_SRC)")
    p.add_argument("--quick", action="store_true", help="HPCM_Tiny only, fewer repeats")
    a = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    models = ["HPCM_Tiny"] if a.quick else ["HPCM_Tiny", "HPCM_Base"]
    repeats = 3 if a.quick else 5
    results = {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
                   f"{torch.cuda.get_device_name() if device.type == 'cuda' else 'no GPU'}",
    }
    sections = {
        "regularizers_on_off": lambda: [regularizer_overhead.measure(m, 2, 256, repeats, device) for m in models],
        "ours_vs_official": lambda: hpcm_vs_official.run(a.official, repeats=repeats, device=str(device)),
        "tune_vs_plain": lambda: search_overhead.tune_vs_plain(6),
        "asha_vs_fifo": lambda: search_overhead.asha_vs_fifo(8, steps_per_epoch=4),
        "real_vs_estimated_bpp": lambda: _rate_fidelity(4),
        "memory_phase2": lambda: memory.measure(models[-1], 2, str(device)),
        "loader": lambda: loader.measure(repeats),
    }
    for name, measure in sections.items():   # results.json grows section by section: a long run keeps what it did
        start = time.perf_counter()
        results[name] = measure()
        print(f"{name}: done in {time.perf_counter() - start:.0f} s", flush=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    rows = [(f"regularizers on/off step time ({r['model']}, {aligner} aligner)", ratio)
            for r in results["regularizers_on_off"] for aligner, ratio in r["ratio_on_over_off"].items()]
    official = results["ours_vs_official"]
    rows.append(("official/ours step time (HPCM_Base)", official.get("speedup_official_over_ours", official.get("skipped"))))
    rows.append(("Tune trial time/plain loop", results["tune_vs_plain"]["ratio_trial_over_plain"]))
    rows.append(("Tune fit wall time (with worker start-up)/plain loop", results["tune_vs_plain"]["ratio_fit_over_plain"]))
    rows.append(("ASHA/FIFO epochs spent (same best: "
                 f"{results['asha_vs_fifo']['same_best']})", results["asha_vs_fifo"]["ratio_epochs_asha_over_fifo"]))
    rows.append(("ASHA vs FIFO Spearman of final rd_score", results["asha_vs_fifo"]["spearman_rd_score"]))
    rows.append(("real/estimated bpp", results["real_vs_estimated_bpp"]["ratio_real_over_estimated"]))
    rows.append((f"peak memory Phase 2 on/off ({results['memory_phase2']['model']})",
                 results["memory_phase2"]["ratio_on_over_off"]))
    rows += [(f"loader images/s after/before, {name}", results["loader"][name]["ratio_after_over_before"])
             for name in loader.FOLDERS]
    print(f"{'benchmark':<58}ratio")
    for name, value in rows:
        print(f"{name:<58}{value:.3f}" if isinstance(value, float) else f"{name:<58}{value}")
    print(f"\n{results['date']}, {results['machine']} -> {RESULTS}")


if __name__ == "__main__":
    main()
