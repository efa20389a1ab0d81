"""The first run on a GPU machine: every CUDA path that CPU tests cannot reach, in one command.

    python -m benchmarks.gpu_check [--official PATH_TO_LIC-HPCM] [--out benchmarks/gpu_check.json]

Checks (estimated ~5 minutes on one H100/H200; not yet run on a GPU): a CUDA fp32 training step matches the CPU one on
HPCM_Tiny; bf16 autocast tracks fp32 over a few hundred steps; torch.compile matches eager;
steady-state steps make no host sync (``torch.cuda.set_sync_debug_mode("error")``, Phase 2 on
and off); HPCM_Base images/s at batch 16, ours vs the official code when given; a trial's λ
models on one GPU (streams) and spread over two GPUs when there are two; peak memory of each.
Writes JSON and prints a table; exit status 0 when every check passes, 1 when one fails,
2 (one line) on a machine where torch cannot use CUDA.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch

from trainable.config import TrainConfig
from trainable.device import cuda_problem, describe
from trainable.models import hpcm as hpcm_module
from trainable.trainer import Run, seed_epoch, step_together, train_step

OUT = Path(__file__).with_name("gpu_check.json")


def tiny(**overrides) -> TrainConfig:
    return TrainConfig(model_name="HPCM_Tiny", batch_size=8, patch_size=256, num_workers=0, learning_rate=1e-4,
                       real_bpp=False, epochs=1000, **overrides)


def batches(n: int, size: int = 256, batch: int = 8) -> list[torch.Tensor]:
    """Fixed smooth-plus-texture batches (CPU), the same for every check."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
        base = torch.stack([xx, yy, (xx + yy) / 2]) * torch.rand(batch, 3, 1, 1, generator=g)
        out.append((base + 0.1 * torch.rand(batch, 3, size, size, generator=g)).clamp(0, 1))
    return out


def make_run(cfg: TrainConfig, device: str, steps: int = 1000) -> Run:
    seed_epoch(cfg.seed, -1)
    return Run(cfg, torch.device(device), steps_per_epoch=steps)


def check_parity() -> dict:
    """One fp32 training step on CPU and on CUDA from the same weights, batch and noise."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    x = batches(1, size=128, batch=2)[0]
    noise = torch.Generator().manual_seed(1)
    original = hpcm_module.uniform_noise
    results = {}
    try:
        for device in ("cpu", "cuda"):
            noise.manual_seed(1)
            hpcm_module.uniform_noise = lambda t: torch.empty(t.shape, dtype=t.dtype).uniform_(
                -0.5, 0.5, generator=noise).to(t.device)
            run = make_run(tiny(), device)
            losses = [float(train_step(run, x.to(device), phase2=False)[0]["loss"]) for _ in range(2)]
            results[device] = (losses, {k: v.detach().cpu() for k, v in run.model.state_dict().items()})
    finally:
        hpcm_module.uniform_noise = original
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cuda.matmul.allow_tf32 = False     # torch's default
    (cpu_loss, cpu_w), (gpu_loss, gpu_w) = results["cpu"], results["cuda"]
    rel = max(abs(a - b) / abs(a) for a, b in zip(cpu_loss, gpu_loss))
    weight = max(float((cpu_w[k] - gpu_w[k]).abs().max()) for k in cpu_w if cpu_w[k].is_floating_point()
                 and cpu_w[k].numel())
    return {"loss_cpu": cpu_loss, "loss_cuda": gpu_loss, "max_rel_loss_diff": rel, "max_abs_weight_diff": weight,
            "pass": rel < 1e-3 and weight < 1e-4}


def _train(cfg: TrainConfig, steps: int, data: list[torch.Tensor], warmup: int = 5) -> tuple[list[float], float, int]:
    """Losses of ``steps`` steps, seconds per step after ``warmup`` (compilation, cuDNN autotuning), skipped steps."""
    run = make_run(cfg, "cuda")
    losses, skipped = [], torch.zeros((), dtype=torch.int32, device="cuda")
    start = time.perf_counter()
    for step in range(steps):
        if step == warmup:
            torch.cuda.synchronize()
            start = time.perf_counter()
        seed_epoch(0, 0, step)
        rd, _, bad = train_step(run, data[step % len(data)].cuda(non_blocking=True), phase2=False)
        losses.append(rd["loss"].detach())
        skipped += bad.int()
    torch.cuda.synchronize()
    return [float(v) for v in losses], (time.perf_counter() - start) / (steps - warmup), int(skipped)


def check_bf16(steps: int = 300) -> dict:
    data = batches(16)
    fp32, t32, _ = _train(tiny(), steps, data)
    bf16, t16, skipped = _train(tiny(amp="bf16"), steps, data)
    tail32, tail16 = sum(fp32[-50:]) / 50, sum(bf16[-50:]) / 50
    return {"steps": steps, "fp32_last50_loss": tail32, "bf16_last50_loss": tail16,
            "rel_diff": abs(tail16 - tail32) / tail32, "bf16_skipped_steps": skipped,
            "max_rel_step_diff_first10": max(abs(a - b) / a for a, b in zip(fp32[:10], bf16[:10])),
            "speed_bf16_over_fp32": t32 / t16, "pass": abs(tail16 - tail32) / tail32 < 0.03 and skipped == 0}


def check_compile(steps: int = 30) -> dict:
    import torch._inductor.config as inductor_config

    data = batches(4)
    eager, t_eager, _ = _train(tiny(), steps, data)
    start = time.perf_counter()
    with inductor_config.patch(fallback_random=True):                         # the same noise as eager
        compiled, t_compiled, _ = _train(tiny(compile=True), steps, data)
    rel = max(abs(a - b) / abs(a) for a, b in zip(eager, compiled))
    return {"steps": steps, "max_rel_loss_diff": rel, "total_s_with_compilation": time.perf_counter() - start,
            "speed_compiled_over_eager": t_eager / t_compiled, "pass": rel < 1e-2}


def check_no_sync() -> dict:
    out = {}
    for name, cfg in {"phase2_off": tiny(), "phase2_on": tiny(phase2_reg=True, phase2_start_epoch=0),
                      "phase1_and_2": tiny(phase2_reg=True, spectral_reg=True, phase2_start_epoch=0)}.items():
        runs = [make_run(cfg, "cuda")]
        phase2 = [runs[0].phase2_active]
        sums, taus = [defaultdict(float)], [None]
        x = batches(1, batch=4)[0].pin_memory()
        for step in range(3):
            step_together(runs, x, 0, step, phase2, sums, taus)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for step in range(3, 8):
                step_together(runs, x, 0, step, phase2, sums, taus)
            out[name] = "no sync"
        except RuntimeError as exc:
            out[name] = f"SYNC: {str(exc).splitlines()[0][:200]}"
        finally:
            torch.cuda.set_sync_debug_mode(0)
    out["pass"] = all(v == "no sync" for v in out.values())
    return out


def check_base_speed(official: str | None) -> dict:
    from . import hpcm_vs_official

    result = hpcm_vs_official.run(official, model="HPCM_Base", batch=16, size=256, repeats=5, device="cuda")
    if "step_s" in result:
        result["images_per_s"] = {k: 16 / v for k, v in result["step_s"].items()}
        result["pass"] = True
        return result
    cfg = replace(tiny(), model_name="HPCM_Base", batch_size=16)     # ours alone
    _, seconds, _ = _train(cfg, 15, batches(2, batch=16))
    return {"official": result.get("skipped"), "ours_images_per_s": 16 / seconds, "pass": True}


def check_lambda_models(lambdas=(0.0018, 0.0067, 0.025)) -> dict:
    """K HPCM_Base λ models in lockstep: one GPU (a stream each), and over two GPUs when there are two."""
    x = batches(1, batch=8)[0].pin_memory()
    out = {"lambdas": list(lambdas)}

    def lockstep(devices: list[str], steps: int = 10) -> float:
        runs = [make_run(replace(tiny(), model_name="HPCM_Base", lmbda=l), d) for l, d in zip(lambdas, devices)]
        sums, taus, phase2 = [defaultdict(float) for _ in runs], [None] * len(runs), [False] * len(runs)
        for step in range(2):
            step_together(runs, x, 0, step, phase2, sums, taus)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for step in range(2, 2 + steps):
            step_together(runs, x, 0, step, phase2, sums, taus)
        for d in set(devices):
            torch.cuda.synchronize(d)
        return steps * len(x) / (time.perf_counter() - start)

    out["one_gpu_images_per_s_per_model"] = lockstep(["cuda:0"] * len(lambdas))
    if torch.cuda.device_count() >= 2:
        out["two_gpus_images_per_s_per_model"] = lockstep([f"cuda:{k % 2}" for k in range(len(lambdas))])
        out["speed_two_over_one"] = out["two_gpus_images_per_s_per_model"] / out["one_gpu_images_per_s_per_model"]
    out["pass"] = True
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official", help="LIC-HPCM checkout for the HPCM_Base speed comparison (default: $HPCM_OFFICIAL_SRC)")
    p.add_argument("--out", default=str(OUT), help="JSON results (default: %(default)s)")
    a = p.parse_args(argv)
    problem = cuda_problem()
    if problem is not None:
        print(f"error: gpu_check needs CUDA: {problem}", file=sys.stderr)
        return 2
    results: dict = {"device": describe(torch.device("cuda")), "gpus": torch.cuda.device_count()}
    torch.backends.cudnn.benchmark = True                 # as training sets it
    checks: dict[str, Callable[[], dict]] = {
        "fp32_parity_cpu_cuda": check_parity, "bf16_vs_fp32": check_bf16, "compile_vs_eager": check_compile,
        "no_host_sync": check_no_sync, "hpcm_base_speed": lambda: check_base_speed(a.official),
        "lambda_models": check_lambda_models,
    }
    for name, check in checks.items():
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        try:
            results[name] = check()
        except Exception as exc:                      # report and go on: one failure must not hide the rest
            results[name] = {"pass": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
                             "traceback": traceback.format_exc()[-2000:]}
        results[name]["seconds"] = time.perf_counter() - start
        results[name]["peak_memory_mib"] = torch.cuda.max_memory_allocated() / 2**20
        Path(a.out).write_text(json.dumps(results, indent=2) + "\n")
        print(f"{name:<24}{'pass' if results[name]['pass'] else 'FAIL':<6}{results[name]['seconds']:>7.0f} s"
              f"{results[name]['peak_memory_mib']:>9.0f} MiB  "
              f"{ {k: v for k, v in results[name].items() if k not in ('pass', 'seconds', 'peak_memory_mib', 'traceback')} }",
              flush=True)
    print(f"{results['device']} -> {a.out}")
    return 0 if all(results[n]["pass"] for n in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
