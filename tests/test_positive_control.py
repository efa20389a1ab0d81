"""``benchmarks.positive_control`` on a microscopic budget: real training of both Tiny models
(three configurations × 1 seed × 4 λ, 2 epochs of 1 step on tiny images), real bitstreams on a
tiny test folder, and checks that every number in the table comes from those runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from analysis.verdict import bd_table
from benchmarks import positive_control as pc
from tests.helpers import image
from trainable.cli import run_cli

LAMBDAS = (0.002, 0.006, 0.018, 0.054)


def _folder(root: Path, sizes, seed: int) -> str:
    root.mkdir(parents=True)
    for i, (h, w) in enumerate(sizes):
        x = image(h, w, seed=seed + i)[0].permute(1, 2, 0).numpy()
        Image.fromarray((x * 255).round().astype(np.uint8)).save(root / f"img{i}.png")
    return str(root)


@pytest.fixture(scope="module")
def control(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pc")
    train = _folder(tmp / "train", [(80, 80), (72, 96)], 0)
    val = _folder(tmp / "val", [(128, 128)], 10)
    test = _folder(tmp / "test", [(70, 90), (64, 64)], 20)
    out = tmp / "out"
    argv = ["--models", "DHIC_Tiny", "HPCM_Tiny", "--seeds", "1", "--epochs", "2", "--steps-per-epoch", "1",
            "--batch-size", "2", "--patch-size", "64", "--lambdas", *map(str, LAMBDAS), "--train-dataset", train,
            "--val-dataset", val, "--test-dataset", test, "--n-boot", "200", "--out", str(out)]
    assert run_cli(pc.main, argv) == 0
    return out, json.loads((out / "positive_control.json").read_text()), (out / "positive_control.md").read_text(), test


def _history(out: Path, model: str, configuration: str, seed: int) -> list[dict]:
    return json.loads((out / "runs" / model / configuration / f"seed{seed}" / "history.json").read_text())["history"]


def test_table_has_both_models_side_by_side_and_every_measure(control):
    out, results, md, _ = control
    header = next(line for line in md.splitlines() if line.startswith("| measure"))
    assert header == "| measure | DHIC_Tiny | HPCM_Tiny |"
    for label in ("speed-up", "final val loss / off", "Phase 1: BD-rate", "Phase 2 repel δ=0.1: BD-rate",
                  "inter-scale R²", "monotone?", "training time"):
        assert sum(label in line for line in md.splitlines() if line.startswith("| ")) >= 1, label
    assert "no GPU used" in md and "seeds [0]" in md and "1 epochs" in md
    assert set(results["models"]) == {"DHIC_Tiny", "HPCM_Tiny"}
    for m in results["models"].values():
        assert set(m["bd_rate_vs_off"]) == {pc.PHASE1, pc.PHASE2}
        assert m["convergence"]["n"] == len(LAMBDAS)
        assert set(m["test_curves"]) == {pc.OFF, pc.PHASE1, pc.PHASE2}


def test_configurations_are_what_they_claim(control):
    out = control[0]
    for model, pairs in (("DHIC_Tiny", 3), ("HPCM_Tiny", 2)):
        off, p1, p2 = (_history(out, model, c, 0) for c in (pc.OFF, pc.PHASE1, pc.PHASE2))
        assert [m["phase"] for m in p1] == ["phase1_intra", "baseline"] and off[0]["phase"] == "baseline"
        assert all(m[f"lambda={lmbda:g}/inter_scale_reg"] != 0 for m in p2 for lmbda in LAMBDAS)
        assert all(m[f"lambda={lmbda:g}/inter_scale_reg"] == 0 for m in off for lmbda in LAMBDAS)
        assert len([k for k in off[-1] if k.startswith("lambda=0.002/val_inter_scale_r2_")]) == pairs


def test_numbers_come_from_the_runs(control):
    out, results, _, _ = control
    points = pd.read_csv(out / "points.csv")
    for model, m in results["models"].items():
        conv = m["convergence"]
        for pair in conv["pairs"]:
            key = f"lambda={pair['lmbda']:g}/val_loss"
            off = [e[key] for e in _history(out, model, pc.OFF, pair["seed"])]
            on = [e[key] for e in _history(out, model, pc.PHASE1, pair["seed"])]
            assert pair["off_final_val_loss"] == off[-1] and pair["phase1_final_val_loss"] == on[-1]
            assert pair["epochs_phase1"] == pytest.approx(pc.reach_epoch(on, off[-1]), nan_ok=True)
        ratio = np.exp(np.mean([math.log(p["phase1_final_val_loss"] / p["off_final_val_loss"]) for p in conv["pairs"]]))
        assert conv["final_loss_ratio"] == pytest.approx(ratio)
        last = _history(out, model, pc.PHASE2, 0)[-1]
        for pair, value in m["inter_scale_r2"][pc.PHASE2]["per_pair"].items():
            r2 = np.mean([last[f"lambda={lmbda:g}/val_inter_scale_r2_{pair}"] for lmbda in LAMBDAS])
            assert value == pytest.approx(r2, nan_ok=True)
        for configuration, curve in m["test_curves"].items():
            mean = points[(points["model"] == model) & (points["configuration"] == configuration)].groupby("lmbda")
            mean = mean[["bpp", "psnr"]].mean().sort_values("bpp")
            assert curve["monotone"] == bool((mean.diff().dropna() > 0).all(axis=None))
        again = bd_table(points[points["model"] == model], pc.OFF).set_index("configuration").loc[pc.PHASE2]
        bd = m["bd_rate_vs_off"][pc.PHASE2]
        assert again["status"] == bd["status"]
        assert again["bd_rate_vs_off"] == pytest.approx(bd["bd_rate_vs_off"], nan_ok=True)


def test_points_are_real_bitstreams_of_the_saved_models(control):
    out, _, _, test = control
    from trainable.codec import load_image, prepare_model
    from trainable.curve import final_model_name

    points = pd.read_csv(out / "points.csv")
    assert len(points) == 2 * 3 * len(LAMBDAS) * 2          # models × configs × λ × images
    row = points[(points["model"] == "DHIC_Tiny") & (points["configuration"] == pc.PHASE2) & (points["seed"] == 0)
                 & (points["lmbda"] == 0.018) & (points["image"] == "img0.png")].iloc[0]
    weights = out / "runs" / "DHIC_Tiny" / pc.PHASE2 / "seed0" / pc.CHECKPOINT / final_model_name(0.018)
    model = prepare_model("DHIC_Tiny", str(weights))
    with torch.no_grad():
        strings = model.compress(load_image(Path(test) / "img0.png"))["strings"]
    assert row["bpp"] == pytest.approx(8 * sum(map(len, strings)) / (70 * 90))


def test_reach_epoch_interpolates_and_says_not_reached():
    assert pc.reach_epoch([10.0, 8.0, 6.0], 7.0) == pytest.approx(2.5)
    assert pc.reach_epoch([5.0, 8.0], 7.0) == 1.0
    assert math.isnan(pc.reach_epoch([10.0, 9.0], 7.0))


def test_seed_bootstrap_is_a_geometric_mean_with_a_seed_interval():
    point, low, high = pc.seed_bootstrap(np.array([[2.0, 2.0], [0.5, 0.5]]), n_boot=500)
    assert point == pytest.approx(1.0) and low == pytest.approx(0.5) and high == pytest.approx(2.0)


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "0"], "error: --seeds must be >= 1, got 0"),
    (["--lambdas", "0.01", "0.02"], "error: BD-rate needs at least 4 λ values, got 2"),
    (["--models", "Nope"], "error: unknown model 'Nope'"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, tmp_path):
    assert run_cli(pc.main, [*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
