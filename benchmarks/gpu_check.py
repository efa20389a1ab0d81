"""The first run on a GPU machine: every CUDA path CPU tests cannot reach, each check able to fail.

    python -m benchmarks.gpu_check [--out benchmarks/results/gpu_check.json] [--only NAME ...]

Every check prints pass / fail / skipped with its threshold (docs/gpus.md lists them). Without
CUDA the checks that can run on the CPU do (lockstep, run-to-run, the two-epoch trial) and the
others say "skipped: no CUDA". Exit 1 when a check fails, else 0. The "planner" section (one λ
model's share of a lockstep step of HPCM_Base, batch 16 x 256², 3 λ models per GPU, Phase 2 on)
is where ``search.run --dry-run`` reads its step time (``--step-seconds-from``; this file by default).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch

from trainable.config import TrainConfig
from trainable.device import describe, kernel_choice
from trainable.regularizers import ALIGNERS
from trainable.trainer import Run, seed_epoch, step_together, train_step

from .parity import GRADIENT_THRESHOLD, LOCKSTEP_THRESHOLD, first_backward, gradient_parity, lockstep_vs_alone, relative_l2, smooth_batch, train_lockstep

OUT = Path(__file__).with_name("results") / "gpu_check.json"
NO_CUDA = "skipped: no CUDA"
PLANNER = {"model": "HPCM_Base", "batch": 16, "patch": 256, "models": 3}
LAMBDAS = (0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483)
THRESHOLDS = {
    "gradient_parity": GRADIENT_THRESHOLD,
    "lockstep_vs_alone": LOCKSTEP_THRESHOLD,
    "run_to_run": "--deterministic: identical losses and weights (default kernels: spread reported)",
    "train_curve": "3 epochs reported, finite losses, bpp and fresh fits, final weights exported",
    "first_sync": "0 host syncs per steady-state step",
    "phase2_time": "every aligner's step < 3 x the step without Phase 2",
    "memory": "every device reserves no more than the dry run plans (an out-of-memory fails only where the plan "
              "said it fits)",
    "bf16_vs_fp32": "last-50 mean loss within 3 % of fp32, no skipped step",
    "compile_vs_eager": "every loss of 30 steps within 1 % of eager",
    "planner": "measured (no threshold)",
}


def tiny(**overrides) -> TrainConfig:
    return TrainConfig(**{"model_name": "HPCM_Tiny", "batch_size": 4, "patch_size": 128, "num_workers": 0,
                          "learning_rate": 1e-4, "real_bpp": False, "epochs": 1000, "clip_max_norm": 0.0, **overrides})


def devices() -> list[str]:
    return [f"cuda:{i}" for i in range(torch.cuda.device_count())]


def cuda_only(check: Callable[[], dict]) -> Callable[[], dict]:
    check.cuda_only = True
    return check


@cuda_only
def check_gradient_parity() -> dict:
    """CPU vs CUDA, fp32, TF32 off: the loss and every gradient of the first backward."""
    x = smooth_batch(2, 128)
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        return gradient_parity(first_backward(tiny(), "cpu", x), first_backward(tiny(), "cuda", x))
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def check_lockstep() -> dict:
    """K = 3 λ models stepped together (a stream each on one GPU) against each alone."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cfgs = [tiny(lmbda=l, seed=0) for l in LAMBDAS[1:6:2]]
    return lockstep_vs_alone(cfgs, [device] * 3, [smooth_batch(4, 128, s) for s in range(3)])


def check_run_to_run(steps: int = 5) -> dict:
    """The same configuration twice: with --deterministic bit-identical (judged), without it the
    spread GPU kernels leave between runs (reported)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    batches = [smooth_batch(4, 128, s) for s in range(steps)]
    out = {"steps": steps}
    cfg = tiny(phase2_reg=True, phase2_start_epoch=0)
    for mode in (True, False):
        with kernel_choice([torch.device(device)], deterministic=mode):
            (la, wa), (lb, wb) = (train_lockstep([cfg], [device], batches)[0] for _ in range(2))
        out["deterministic" if mode else "default"] = {
            "loss_max_relative_diff": max(abs(a - b) / abs(a) for a, b in zip(la, lb)),
            "weight_max_relative_l2": max(relative_l2(wa[n], wb[n]) for n in wa)}
    d = out["deterministic"]
    out["status"] = "pass" if d["loss_max_relative_diff"] == 0 and d["weight_max_relative_l2"] == 0 else "fail"
    return out


def check_train_curve() -> dict:
    """Two epochs of a trial end to end (loader workers, pinned memory on CUDA, Phase 1 then 2,
    validation with the measure, fresh, checkpoint, real bpp, export), then a resumed third."""
    from trainable.curve import CURVE_LAST, CurveConfig, final_model_name, train_curve

    spread = tuple(devices()[:2]) if torch.cuda.device_count() >= 2 else ()
    with tempfile.TemporaryDirectory() as tmp:
        base = tiny(epochs=2, steps_per_epoch=3, num_workers=2, spectral_reg=True, truncation_epochs=1,
                    phase2_reg=True, real_bpp=True, save_path=tmp, device="auto")
        rows: list[dict] = []
        curve = CurveConfig(base, LAMBDAS[1:6:2], spread)
        train_curve(curve, lambda m, d: rows.append(m))
        exported = all((Path(tmp) / final_model_name(l)).is_file() for l in curve.lambdas)
        train_curve(replace(curve, base=replace(base, epochs=3)), lambda m, d: rows.append(m),
                    resume=Path(tmp) / CURVE_LAST)
    last = rows[-1]
    finite = all(v == v and abs(v) != float("inf") for k, v in last.items()
                 if isinstance(v, float) and ("val_loss" in k or "real_bpp" in k or "fresh" in k))
    ok = [m["epoch"] for m in rows] == [1, 2, 3] and exported and finite and last["rd_score"] < float("inf")
    return {"status": "pass" if ok else "fail", "devices": sorted({v for k, v in last.items() if k.endswith("/device")}),
            "rd_score": last["rd_score"], "seconds_per_epoch": last.get(f"lambda={LAMBDAS[1]:g}/epoch_seconds")}


def _step_seconds(runs: list[Run], x: torch.Tensor, phase2: bool, steps: int = 5, warmup: int = 3) -> float:
    sums, taus = [defaultdict(float) for _ in runs], [None] * len(runs)
    for step in range(warmup + steps):
        if step == warmup:
            for d in {r.device for r in runs}:
                torch.cuda.synchronize(d)
            start = time.perf_counter()
        step_together(runs, x, 0, step, [phase2] * len(runs), sums, taus)
    for d in {r.device for r in runs}:
        torch.cuda.synchronize(d)
    return (time.perf_counter() - start) / steps


def _runs(cfg: TrainConfig, placement: list[str]) -> list[Run]:
    out = []
    for lmbda, device in zip(LAMBDAS, placement):
        seed_epoch(0, -1)
        out.append(Run(replace(cfg, lmbda=lmbda), torch.device(device), steps_per_epoch=100))
    return out


@cuda_only
def check_planner() -> dict:
    """What the dry run plans with: 3 HPCM_Base λ models in lockstep on one GPU, Phase 2 on."""
    cfg = replace(tiny(), model_name=PLANNER["model"], batch_size=PLANNER["batch"], patch_size=PLANNER["patch"],
                  phase2_reg=True, phase2_start_epoch=0)
    runs = _runs(cfg, ["cuda:0"] * PLANNER["models"])
    lockstep = _step_seconds(runs, smooth_batch(PLANNER["batch"], PLANNER["patch"]).pin_memory(), True)
    return {"status": "pass", "lockstep_seconds": lockstep,
            "step_seconds": lockstep / PLANNER["models"]}


@cuda_only
def check_phase2_time() -> dict:
    """Seconds per step of one HPCM_Base (batch 8) with Phase 2 off and with each aligner."""
    x = smooth_batch(8, 256).pin_memory()
    out = {}
    for name in ("off", *ALIGNERS):
        cfg = replace(tiny(), model_name="HPCM_Base", batch_size=8, phase2_reg=name != "off", phase2_start_epoch=0,
                      phase2_aligner=name if name != "off" else "crossfit")
        out[name] = _step_seconds(_runs(cfg, ["cuda:0"]), x, name != "off")
    ok = all(v < 3 * out["off"] for v in out.values())
    return {"status": "pass" if ok else "fail", "seconds_per_step": out}


def _reserved(cfg: TrainConfig, placement: list[str], x: torch.Tensor) -> dict:
    """Per device: what it reserved over a few lockstep steps, and its allocator's retries."""
    for d in set(placement):
        torch.cuda.reset_peak_memory_stats(d)
    _step_seconds(_runs(cfg, placement), x, False, steps=2, warmup=1)
    return {d: {"max_reserved_gib": torch.cuda.max_memory_reserved(d) / 2**30,
                "alloc_retries": torch.cuda.memory_stats(d).get("num_alloc_retries", 0)} for d in sorted(set(placement))}


@cuda_only
def check_memory() -> dict:
    """max_memory_reserved and num_alloc_retries on every device: 6 HPCM_Base λ models, batch 16,
    fp32 and bf16, on one GPU and spread over two, against what the dry run plans for them."""
    from search.memory_plan import CUDA_CONTEXT_GIB, model_gib
    from trainable.models import create_model

    x = smooth_batch(16, 256).pin_memory()
    parameters = sum(p.numel() for p in create_model("HPCM_Base").parameters())
    capacity = torch.cuda.get_device_properties(0).total_memory / 2**30
    placements = {"one_gpu": ["cuda:0"] * 6}
    if torch.cuda.device_count() >= 2:
        placements["two_gpus"] = [f"cuda:{k % 2}" for k in range(6)]
    out, ok = {}, True
    for amp in ("fp32", "bf16"):
        cfg = replace(tiny(), model_name="HPCM_Base", batch_size=16, amp=amp)
        per_model = model_gib(cfg.model_name, parameters, cfg.batch_size, cfg.patch_size, amp)
        for where, placement in placements.items():
            planned = {d: placement.count(d) * per_model + CUDA_CONTEXT_GIB for d in set(placement)}
            try:
                found = _reserved(cfg, placement, x)
                out[f"{amp}_{where}"] = {d: {**v, "planned_gib": planned[d]} for d, v in found.items()}
                ok &= all(v["max_reserved_gib"] <= planned[d] for d, v in found.items())
            except torch.OutOfMemoryError as exc:     # a failure only where the dry run would have let it run
                out[f"{amp}_{where}"] = f"out of memory: {str(exc).splitlines()[0][:200]}"
                ok &= max(planned.values()) > capacity
            torch.cuda.empty_cache()
    return {"status": "pass" if ok else "fail", **out}


def _sync_site(exc: BaseException) -> str:
    """The innermost project line (and the innermost line) of the traceback of a sync error."""
    frames = traceback.extract_tb(exc.__traceback__)
    root = str(Path(__file__).resolve().parents[1])
    project = [f for f in frames if f.filename.startswith(root)]
    show = [f"{Path(f.filename).name}:{f.lineno} ({f.name}): {(f.line or '').strip()}" for f in (project[-1:] + frames[-1:])]
    return " via ".join(reversed(show)) if project and project[-1] is not frames[-1] else show[0]


@cuda_only
def check_first_sync() -> dict:
    """Steady-state steps (off, Phase 1, Phase 2 with each aligner) with CUDA's sync debug mode
    set to error: no sync; else the first one's call site."""
    x = smooth_batch(4, 128).pin_memory()
    kinds = {"off": {}, "phase1": {"spectral_reg": True, "truncation_epochs": 5},
             **{f"phase2_{a}": {"phase2_reg": True, "phase2_start_epoch": 0, "phase2_aligner": a} for a in ALIGNERS}}
    found = {}
    for name, overrides in kinds.items():
        runs = _runs(tiny(**overrides), ["cuda:0"])
        sums, taus, phase2 = [defaultdict(float)], [None], [runs[0].phase2_active]
        for step in range(3):
            step_together(runs, x, 0, step, phase2, sums, taus)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for step in range(3, 6):
                step_together(runs, x, 0, step, phase2, sums, taus)
            found[name] = None
        except RuntimeError as exc:
            found[name] = f"{_sync_site(exc)}: {str(exc).splitlines()[0][:120]}"
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return {"status": "pass" if not any(found.values()) else "fail", "first_sync": found}


def _losses(cfg: TrainConfig, steps: int) -> tuple[list[float], int]:
    """Losses of ``steps`` steps of ``cfg`` on CUDA over fixed batches, and the steps skipped."""
    data = [smooth_batch(cfg.batch_size, cfg.patch_size, s) for s in range(16)]
    run = _runs(cfg, ["cuda:0"])[0]
    losses, bad = [], torch.zeros((), dtype=torch.int32, device="cuda")
    for step in range(steps):
        seed_epoch(0, 0, step)
        rd, _, b = train_step(run, data[step % len(data)].cuda(non_blocking=True), phase2=False)
        losses.append(rd["loss"].detach())
        bad += b.int()
    return [float(v) for v in losses], int(bad)


@cuda_only
def check_bf16(steps: int = 300) -> dict:
    """bf16 autocast against fp32 over ``steps`` steps of HPCM_Tiny: the last 50 losses."""
    tails, skipped = {}, 0
    for amp in ("fp32", "bf16"):
        losses, bad = _losses(tiny(amp=amp, batch_size=8, patch_size=256), steps)
        tails[amp], skipped = sum(losses[-50:]) / 50, skipped + bad
    rel = abs(tails["bf16"] - tails["fp32"]) / tails["fp32"]
    return {"status": "pass" if rel < 0.03 and skipped == 0 else "fail",
            "relative_diff": rel, **tails}


@cuda_only
def check_compile(steps: int = 30) -> dict:
    """torch.compile (Inductor, its random numbers as eager's) against eager, HPCM_Tiny."""
    import torch._inductor.config as inductor_config

    eager, _ = _losses(tiny(), steps)
    with inductor_config.patch(fallback_random=True):
        compiled, _ = _losses(tiny(compile=True), steps)
    rel = max(abs(a - b) / abs(a) for a, b in zip(eager, compiled))
    return {"status": "pass" if rel < 1e-2 else "fail", "max_relative_loss_diff": rel}


def main(argv: list[str] | None = None) -> int:
    checks: dict[str, Callable[[], dict]] = {
        "run_to_run": check_run_to_run,          # first: --deterministic sets cuBLAS up before its first call
        "gradient_parity": check_gradient_parity, "lockstep_vs_alone": check_lockstep,
        "train_curve": check_train_curve, "first_sync": check_first_sync,
        "phase2_time": check_phase2_time, "memory": check_memory, "bf16_vs_fp32": check_bf16,
        "compile_vs_eager": check_compile, "planner": check_planner}
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(OUT), help="JSON results (default: %(default)s)")
    p.add_argument("--only", nargs="+", choices=list(checks), help="run these checks only")
    a = p.parse_args(argv)
    cuda = torch.cuda.is_available()
    results: dict = {"device": describe(torch.device("cuda" if cuda else "cpu")), "gpus": torch.cuda.device_count(),
                     "date": time.strftime("%Y-%m-%d")}
    for name in a.only or checks:
        check, start = checks[name], time.perf_counter()
        if getattr(check, "cuda_only", False) and not cuda:
            results[name] = {"status": NO_CUDA}
        else:
            try:
                results[name] = check()
            except Exception as exc:                  # report and go on: one failure must not hide the rest
                results[name] = {"status": "fail", "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
                                 "traceback": traceback.format_exc()[-2000:]}
        results[name]["seconds"] = time.perf_counter() - start
        shown = {k: v for k, v in results[name].items() if k not in ("status", "threshold", "seconds", "traceback")}
        results[name]["threshold"] = THRESHOLDS[name]
        print(f"{name:<18}{results[name]['status']:<18}{results[name]['seconds']:>6.0f} s  [{THRESHOLDS[name]}] {shown}",
              flush=True)
    if results.get("planner", {}).get("status") == "pass":
        results["planner"].update(PLANNER, device=torch.cuda.get_device_name(0))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"{results['device']} -> {a.out}")
    return 1 if any(r["status"] == "fail" for r in results.values() if isinstance(r, dict) and "status" in r) else 0


if __name__ == "__main__":
    sys.exit(main())
