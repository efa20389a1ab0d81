"""Budgets in steps and the dry-run cost plan, checked against arithmetic done here by hand."""
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from search.config import SearchConfig
from search.cost import plan_cost
from search.plan import make_plan
from trainable.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
VAL_SIZES = [(100, 60), (50, 80)]          # (width, height): 6000 + 4000 = 10,000 pixels
TRAIN_IMAGES = 10


def _folders(tmp_path: Path) -> tuple[str, str]:
    rng = np.random.default_rng(0)
    train, val = tmp_path / "train", tmp_path / "val"
    for folder, sizes in ((train, [(128, 128)] * TRAIN_IMAGES), (val, VAL_SIZES)):
        folder.mkdir()
        for i, (w, h) in enumerate(sizes):
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return str(train), str(val)


def _dry_run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """``search.run --dry-run`` in a fresh interpreter that then says whether Ray was imported."""
    code = ("import sys; from search.run import main; from trainable.cli import run_cli; "
            f"rc = run_cli(main, {args!r} + ['--dry-run']); "
            "print('ray imported' if 'ray' in sys.modules else 'ray not imported'); sys.exit(rc)")
    env = {**os.environ, "HPCM_TUNE_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=300)


def test_a_step_budget_becomes_whole_evaluation_periods():
    cfg = SearchConfig.create("phase2_delta", "cpu-smoke", max_steps=1000, steps_per_epoch=300)
    assert (cfg.max_epochs, cfg.max_steps) == (4, 1200)          # ceil(1000 / 300) = 4 periods
    day = SearchConfig.create("phase2_delta", "gpu-day")
    assert day.max_epochs * day.steps_per_epoch == day.max_steps == 50_000
    shorter = SearchConfig.create("phase2_delta", "gpu-day", steps_per_epoch=10_000)   # same budget, fewer validations
    assert (shorter.max_epochs, shorter.max_steps) == (5, 50_000)
    epochs = SearchConfig.create("phase2_delta", "gpu-day", max_epochs=3)       # --max-epochs replaces it
    assert (epochs.max_epochs, epochs.max_steps) == (3, None)
    with pytest.raises(InputError, match="give one"):
        SearchConfig.create("phase2_delta", "cpu-smoke", max_steps=100, max_epochs=3)
    with pytest.raises(InputError, match="needs --steps-per-epoch"):
        SearchConfig.create("phase2_delta", "paper", max_steps=100)             # paper: one pass per epoch


def test_dry_run_cost_matches_hand_arithmetic_and_never_imports_ray(tmp_path):
    train, val = _folders(tmp_path)
    step_s, batch, patch, spe, steps, seeds = 0.5, 2, 64, 100, 1000, 3
    args = ["--space", "phase2_delta", "--preset", "gpu-short", "--lambdas", "0.0035", "0.0067", "0.013", "0.025", "--seeds", str(seeds),
            "--model", "HPCM_Tiny", "--batch-size", str(batch), "--patch-size", str(patch), "--max-steps", str(steps),
            "--steps-per-epoch", str(spe), "--step-seconds", str(step_s), "--train-dataset", train,
            "--test-dataset", val, "--storage-path", str(tmp_path / "runs"), "--plan-gpus", "8"]
    out = _dry_run(args, tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "ray not imported" and not (tmp_path / "runs").exists()
    # by hand: phase2_delta's grid is δ ∈ {0 (off), 0.05, 0.1, 0.15}: 4 configurations x 3 seeds,
    # 4 λ models each; 10 validations per model, each a forward over 10,000 pixels at a third
    # of a step's cost per pixel of the 2 x 64² batch.
    validation = step_s / 3 * 10_000 / (batch * patch * patch)
    hours = 4 * seeds * 4 * (steps * step_s + (steps // spe) * validation) / 3600
    total = lines[-2]
    assert total.startswith("total: ") and total.endswith(" GPU-hours")
    assert float(total.split()[1]) == pytest.approx(hours, abs=0.051)
    assert "= 12 trials" in out.stdout and "1,000 steps each = 10 validations every 100 steps" in out.stdout
    cost = plan_cost(make_plan(SearchConfig.create(
        "phase2_delta", "gpu-short", lambdas=(0.0035, 0.0067, 0.013, 0.025), seeds=seeds, model="HPCM_Tiny", batch_size=batch,
        patch_size=patch, max_steps=steps, steps_per_epoch=spe, train_dataset=train, val_dataset=val)),
        step_seconds=step_s, gpus=8)
    assert cost.total_hours == pytest.approx(hours, rel=1e-9)
    # 8 GPUs, 1 per trial: 12 trials take two rounds of one trial (its 4 λ models one after another)
    assert f"about {2 * 4 * (steps * step_s + 10 * validation) / 3600:.1f} h wall-clock (2 rounds" in out.stdout


def test_checkpoint_size_is_weights_plus_two_adam_moments_per_lambda(tmp_path):
    from trainable.models import create_model

    model = create_model("HPCM_Tiny")
    weights = sum(v.numel() for v in model.state_dict().values())
    params = sum(p.numel() for p in model.parameters())
    cost = plan_cost(make_plan(SearchConfig.create("phase2_delta", "cpu-smoke", lambdas=(0.0067, 0.013, 0.025)),
                               verify_data=False), step_seconds=1.0)
    assert cost.checkpoint_bytes("HPCM_Tiny") == 3 * 4 * (weights + 2 * params)


def test_one_pass_epochs_count_the_training_images(tmp_path):
    train, val = _folders(tmp_path)
    cost = plan_cost(make_plan(SearchConfig.create("phase2_delta", "paper", model="HPCM_Tiny", batch_size=3,
                                                   patch_size=128, max_epochs=2, train_dataset=train, val_dataset=val)),
                     step_seconds=1.0)
    assert cost.steps_per_epoch == TRAIN_IMAGES // 3 and cost.steps == 2 * (TRAIN_IMAGES // 3)


def test_asha_estimate_follows_successive_halving(tmp_path):
    # rungs at 1 and 2 epochs of 4, reduction factor 2: half the trials stop after 1 epoch, a
    # quarter after 2, a quarter train 4 -> 0.5 + 0.5 + 1 = 2 epochs per trial on average.
    cfg = SearchConfig.create("joint", "cpu-smoke", max_epochs=4, grace_epochs=1, reduction_factor=2.0,
                              num_samples=4, lambdas=(0.013,))
    plan = make_plan(cfg, verify_data=False)
    plan = plan.__class__(**{**plan.__dict__, "grace": 1})   # joint's Phase 1 would raise the grace
    cost = plan_cost(plan, step_seconds=1.0)
    assert cost.asha_hours == pytest.approx(cost.total_hours * 2 / 4, rel=1e-9)


def test_a_real_step_can_be_timed():
    """The path a GPU machine takes by default, here on CPU: real steps of the plan's model."""
    plan = make_plan(SearchConfig.create("phase2_delta", "cpu-smoke", batch_size=1, patch_size=64), verify_data=False)
    measured = plan_cost(plan, measure=True).models["HPCM_Tiny"]
    assert measured.source == "measured here on CPU"
    assert math.isfinite(measured.step_seconds) and measured.step_seconds > 0


def test_gpu_day_answers_phase2_delta_at_3_seeds_within_a_day_on_8_gpus(tmp_path, capsys):
    plan = make_plan(SearchConfig.create("phase2_delta", "gpu-day"), verify_data=False)
    cost = plan_cost(plan, gpus=8, measure=False)
    assert plan.config.seeds == 3 and len(plan.configurations) == 4 and len(plan.lambdas) == 6
    # by hand: 4 configurations x 3 seeds x 6 λ x 50,000 steps x 0.15 s = 150 GPU-hours + validations
    assert cost.total_hours == pytest.approx(150, rel=0.02) and cost.total_hours <= 192
    rounds = math.ceil(12 / (8 // 2))                          # 2 GPUs per trial: 4 at once
    assert rounds * cost.trial_hours("HPCM_Base") / 2 <= 24    # a trial's 6 λ models spread over its 2 GPUs
    # a real run fine-tunes: without checkpoints it is refused before Ray starts
    from search.run import main
    from trainable.cli import run_cli

    assert run_cli(main, ["--space", "phase2_delta", "--preset", "gpu-day", "--storage-path", str(tmp_path)]) == 2
    assert "fine-tunes released checkpoints: pass --init-weights" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("flag,value,message", [("--step-seconds", "-1", "--step-seconds must be > 0"),
                                                ("--plan-gpus", "0", "--plan-gpus must be >= 1")])
def test_bad_planning_figures_are_refused(tmp_path, capsys, flag, value, message):
    from search.run import main
    from trainable.cli import run_cli

    code = run_cli(main, ["--space", "phase2_delta", "--preset", "cpu-smoke", "--dry-run", flag, value,
                          "--storage-path", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


def _results(section: str) -> dict:
    import json

    return json.loads((ROOT / "benchmarks" / "results.json").read_text())[section]


def test_a_loader_that_cannot_feed_the_gpus_is_reported_and_counted():
    rate = _results("loader")["2040x1356_png"]["images_per_s_after"]
    day = make_plan(SearchConfig.create("phase2_delta", "gpu-day"), verify_data=False)
    fed = plan_cost(day, gpus=8, measure=False)
    loader = fed.loader["HPCM_Base"]
    # by hand: 6 λ on 2 GPUs = 3 per GPU, one after another: 16 crops per 3 x 0.15 s; 15 workers
    assert loader.demand == pytest.approx(16 / (3 * 0.15)) and loader.supply == pytest.approx(15 * rate)
    assert loader.slowdown == 1 and not any("binds" in line for line in fed.lines())
    starved = plan_cost(make_plan(SearchConfig.create("phase2_delta", "gpu-day", cpus_per_trial=4), verify_data=False),
                        gpus=8, measure=False)
    slowdown = (16 / (3 * 0.15)) / (3 * rate)                    # 3 workers
    assert starved.loader["HPCM_Base"].slowdown == pytest.approx(slowdown)
    assert starved.total_hours - 12 * 6 * 20 * starved.validation_seconds("HPCM_Base") / 3600 == pytest.approx(
        12 * 6 * 50_000 * 0.15 * slowdown / 3600)                # every step at the loader's pace
    warning = next(line for line in starved.lines() if "binds" in line)
    assert f"--cpus-per-trial {math.ceil(16 / 0.45 / rate) + 1}" in warning


def test_the_loader_can_be_measured_on_the_training_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HPCM_TUNE_CACHE", str(tmp_path / "cache"))
    train, val = _folders(tmp_path)
    plan = make_plan(SearchConfig.create("phase2_delta", "gpu-short", model="HPCM_Tiny", train_dataset=train, patch_size=128,
                                         val_dataset=val))
    loader = plan_cost(plan, step_seconds=0.1, measure_loader=True).loader["HPCM_Tiny"]
    assert loader.source == f"--measure-loader: measured here on {train}" and loader.crops_per_worker > 0


def test_memory_per_gpu_is_the_sum_of_its_models_and_a_plan_that_does_not_fit_is_refused(tmp_path, capsys):
    saved = _results("training_memory")["HPCM_Base"]
    day = make_plan(SearchConfig.create("phase2_delta", "gpu-day"), verify_data=False)
    memory = plan_cost(day, gpus=8, measure=False, gpu_memory=80).memory["HPCM_Base"]
    # by hand: 16 B per parameter + 1.25 x batch 16 x one 256² crop's saved activations, 3 models per GPU
    per_model = saved["parameters"] * 16 / 2**30 + 1.25 * 16 * saved["saved_gib_per_crop_fp32"]
    assert memory.models_per_gpu == 3 and memory.model_gib == pytest.approx(per_model)
    assert memory.total_gib == pytest.approx(3 * per_model + memory.validation_gib + 0.5)
    shared = plan_cost(make_plan(SearchConfig.create("phase2_delta", "gpu-day", gpus_per_trial=0.5),
                                 verify_data=False), gpus=8, measure=False)
    assert shared.memory["HPCM_Base"].models_per_gpu == 12                # two trials' 6 λ models on one GPU
    bf16 = plan_cost(make_plan(SearchConfig.create("phase2_delta", "gpu-day", amp="bf16"), verify_data=False),
                     gpus=8, measure=False).memory["HPCM_Base"]
    assert bf16.model_gib < memory.model_gib
    from search.run import main
    from trainable.cli import run_cli

    args = ["--space", "phase2_delta", "--preset", "gpu-day", "--gpus-per-trial", "1", "--gpu-memory-gib", "40",
            "--storage-path", str(tmp_path / "runs"), "--dry-run"]
    assert run_cli(main, args) == 2
    out = capsys.readouterr()
    assert "memory per GPU (HPCM_Base): about" in out.out
    assert out.err.count("\n") == 1 and "does not fit 40 GiB; raise --gpus-per-trial, use --amp bf16, or train " \
                                       "fewer λ (--lambdas)" in out.err
    real = ["--space", "phase2_delta", "--preset", "gpu-short", "--gpu-memory-gib", "20", "--storage-path",
            str(tmp_path / "runs")]
    assert run_cli(main, real) == 2                                               # a real run is refused too
    assert "does not fit 20 GiB" in capsys.readouterr().err and not (tmp_path / "runs").exists()


def test_the_dry_run_takes_the_step_time_gpu_check_measured(tmp_path):
    import json

    path = tmp_path / "gpu_check.json"
    path.write_text(json.dumps({"planner": {"model": "HPCM_Base", "batch": 8, "patch": 256, "models": 3,
                                            "step_seconds": 0.1, "device": "NVIDIA H200"}}))
    day = make_plan(SearchConfig.create("phase2_delta", "gpu-day"), verify_data=False)
    cost = plan_cost(day, gpus=8, step_seconds_from=path)
    assert cost.models["HPCM_Base"].step_seconds == pytest.approx(0.2)       # batch 16: twice the pixels
    assert cost.models["HPCM_Base"].source.startswith("gpu_check.json: gpu_check on NVIDIA H200, 3 λ models")
    other = make_plan(SearchConfig.create("phase2_delta", "gpu-day", model="HPCM_Large"), verify_data=False)
    assert "default for one H100" in plan_cost(other, gpus=8, step_seconds_from=path, measure=False).models[
        "HPCM_Large"].source                                                   # no figure for that model
    with pytest.raises(InputError, match="not found"):
        plan_cost(day, step_seconds_from=tmp_path / "missing.json")
