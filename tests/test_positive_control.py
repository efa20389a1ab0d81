"""``benchmarks.positive_control`` on a microscopic budget: real training of both Tiny models
(off and phase1+2 × 1 seed × 4 λ, 2 epochs of 1 step on tiny images), real bitstreams on a
tiny test folder, checks that every number in the table comes from those runs, the
steps-to-quality arithmetic on constructed curves, and resuming (finished curves skipped, an
interrupted one continued to the same result as an uninterrupted one)."""

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
    argv = ["--models", "DHIC_Tiny", "HPCM_Tiny", "--configurations", "off", "phase1+2", "--seeds", "1", "--epochs", "2", "--steps-per-epoch", "1",
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
    for label in ("phase1+2: speed-up", "phase1+2: final val loss / off", "phase1+2: BD-rate",
                  "predictability R²", "CKA", "monotone?", "PSNR drop", "training time"):
        assert sum(label in line for line in md.splitlines() if line.startswith("| ")) >= 1, label
    assert "no GPU used" in md and "seeds [0]" in md and "1 epochs" in md and "aligner crossfit" in md
    assert set(results["models"]) == {"DHIC_Tiny", "HPCM_Tiny"}
    for m in results["models"].values():
        assert set(m["bd_rate_vs_off"]) == set(m["convergence"]) == {pc.BOTH}
        assert m["convergence"][pc.BOTH]["n"] == len(LAMBDAS)
        assert set(m["test_curves"]) == set(m["inter_scale_r2"]) == {pc.OFF, pc.BOTH}


def test_configurations_are_what_they_claim(control):
    out = control[0]
    for model, pairs in (("DHIC_Tiny", 3), ("HPCM_Tiny", 2)):
        off, both = (_history(out, model, c, 0) for c in (pc.OFF, pc.BOTH))
        assert [m["phase"] for m in both] == ["phase1_intra", "baseline"] and off[0]["phase"] == "baseline"
        assert [m["phase2_active"] for m in both] == [False, True] and not any(m["phase2_active"] for m in off)
        assert all(m[f"lambda={lmbda:g}/inter_scale_reg"] == 0 for m in off for lmbda in LAMBDAS)
        assert len([k for k in off[-1] if k.startswith("lambda=0.002/val_inter_scale_r2_")]) == pairs


def test_every_configuration_sets_what_its_name_says():
    budget = pc.Budget(configurations_run=pc.CONFIGURATIONS, epochs=6)
    cfgs = {c: budget.train_config("DHIC_Tiny", c, 0, Path(".")) for c in pc.CONFIGURATIONS}
    assert not cfgs[pc.OFF].phase1_on and not cfgs[pc.OFF].phase2_on
    assert cfgs[pc.PHASE1].phase1_on and not cfgs[pc.PHASE1].phase2_on and cfgs[pc.PHASE1].truncation_epochs == 3
    assert cfgs[pc.PHASE2].phase2_on and not cfgs[pc.PHASE2].phase1_on and cfgs[pc.PHASE2].phase2_start == 0
    assert cfgs[pc.BOTH].phase1_on and cfgs[pc.BOTH].phase2_on and cfgs[pc.BOTH].phase2_start == 3
    assert {cfgs[c].delta for c in (pc.PHASE2, pc.BOTH)} == {0.1} and cfgs[pc.BOTH].phase2_sign == "repel"


def test_numbers_come_from_the_runs(control):
    out, results, _, _ = control
    points = pd.read_csv(out / "points.csv")
    for model, m in results["models"].items():
        conv = m["convergence"][pc.BOTH]
        for pair in conv["pairs"]:
            key = f"lambda={pair['lmbda']:g}/val_loss"
            off = [e[key] for e in _history(out, model, pc.OFF, pair["seed"])]
            on = [e[key] for e in _history(out, model, pc.BOTH, pair["seed"])]
            assert pair["off_final_val_loss"] == off[-1] and pair["final_val_loss"] == on[-1]
            assert pair["steps"] == pytest.approx(pc.reach_epoch(on, off[-1]), nan_ok=True)   # 1 step per epoch
        ratio = np.exp(np.mean([math.log(p["final_val_loss"] / p["off_final_val_loss"]) for p in conv["pairs"]]))
        assert conv["final_loss_ratio"] == pytest.approx(ratio)
        last = _history(out, model, pc.BOTH, 0)[-1]
        for pair, value in m["inter_scale_r2"][pc.BOTH]["r2"]["per_pair"].items():
            r2 = [last[f"lambda={lmbda:g}/val_inter_scale_r2_{pair}"] for lmbda in LAMBDAS]
            r2 = [v for v in r2 if math.isfinite(v)]
            assert value == pytest.approx(sum(r2) / len(r2) if r2 else math.nan, nan_ok=True)
        for configuration, curve in m["test_curves"].items():
            mean = points[(points["model"] == model) & (points["configuration"] == configuration)].groupby("lmbda")
            mean = mean[["bpp", "psnr"]].mean().sort_values("bpp")
            assert curve["monotone"] == bool((mean.diff().dropna() > 0).all(axis=None))
        again = bd_table(points[points["model"] == model], pc.OFF).set_index("configuration").loc[pc.BOTH]
        bd = m["bd_rate_vs_off"][pc.BOTH]
        assert again["status"] == bd["status"]
        assert again["bd_rate_vs_off"] == pytest.approx(bd["bd_rate_vs_off"], nan_ok=True)


def test_points_are_real_bitstreams_of_the_saved_models(control):
    out, _, _, test = control
    from trainable.codec import load_image, prepare_model
    from trainable.curve import final_model_name

    points = pd.read_csv(out / "points.csv")
    assert len(points) == 2 * 2 * len(LAMBDAS) * 2          # models × configs × λ × images
    row = points[(points["model"] == "DHIC_Tiny") & (points["configuration"] == pc.BOTH) & (points["seed"] == 0)
                 & (points["lmbda"] == 0.018) & (points["image"] == "img0.png")].iloc[0]
    weights = out / "runs" / "DHIC_Tiny" / pc.BOTH / "seed0" / pc.CHECKPOINT / final_model_name(0.018)
    model = prepare_model("DHIC_Tiny", str(weights))
    with torch.no_grad():
        strings = model.compress(load_image(Path(test) / "img0.png"))["strings"]
    assert row["bpp"] == pytest.approx(8 * sum(map(len, strings)) / (70 * 90))


def test_reach_epoch_interpolates_and_says_not_reached():
    assert pc.reach_epoch([10.0, 8.0, 6.0], 7.0) == pytest.approx(2.5)
    assert pc.reach_epoch([5.0, 8.0], 7.0) == 1.0
    assert math.isnan(pc.reach_epoch([10.0, 9.0], 7.0))


def _run(losses: list[float]) -> dict:
    return {"history": [{f"lambda={lmbda:g}/val_loss": v for lmbda in LAMBDAS} for v in losses]}


def test_steps_to_off_final_loss_on_constructed_curves():
    """off [10, 8, 6]: its own target 6 at epoch 3 = 150 steps (50 per epoch); the other curve
    [9, 6.5, 5] crosses 6 at epoch 2 + 0.5/1.5 = 7/3, i.e. 116.67 steps: speed-up 150 / (350/3) = 9/7;
    a curve that never gets to 6 is "not reached"."""
    budget = pc.Budget(configurations_run=(pc.OFF, pc.BOTH), steps_per_epoch=50)
    runs = {pc.OFF: {0: _run([10, 8, 6]), 1: _run([10, 8, 6])}, pc.BOTH: {0: _run([9, 6.5, 5]), 1: _run([9, 6.5, 5])}}
    result = pc.convergence(runs, budget, pc.BOTH)
    assert result["reached"] == result["n"] == 2 * len(LAMBDAS)
    assert all(p["steps_off"] == 150 and p["steps"] == pytest.approx(350 / 3) for p in result["pairs"])
    assert result["speedup"] == pytest.approx(9 / 7) and result["speedup_ci"] == pytest.approx([9 / 7, 9 / 7])
    assert result["final_loss_ratio"] == pytest.approx(5 / 6)
    runs[pc.BOTH][1] = _run([9, 7, 6.5])
    slow = pc.convergence(runs, budget, pc.BOTH)
    assert slow["speedup"] is None and slow["speedup_text"] == f"not reached ({len(LAMBDAS)} of {2 * len(LAMBDAS)} λ×seed)"


def test_predictability_means_skip_pairs_that_code_nothing():
    """Seed 0: s1_s2 undefined (NaN), s2_s3 0.2 at every λ; seed 1: 0.4 and 0.6; seed 2: 0.0 and 0.2.
    Per seed mean of defined values: 0.2, 0.5, 0.1; overall 0.8 / 3; 20 of 24 defined (4 λ of seed 0 s1_s2 not)."""
    budget = pc.Budget()
    per_seed = {0: (math.nan, 0.2), 1: (0.4, 0.6), 2: (0.0, 0.2)}
    runs = {pc.OFF: {seed: {"history": [{f"lambda={lmbda:g}/val_inter_scale_{m}_{pair}": v + (m == "within")
                                         for lmbda in LAMBDAS for m in ("r2", "within", "cka")
                                         for pair, v in zip(("s1_s2", "s2_s3"), values)}]}
                     for seed, values in per_seed.items()}}
    read = pc.inter_scale_r2(runs, budget, n_boot=200)[pc.OFF]
    r2 = read["r2"]
    # each kind from its own key (within was logged 1 higher); a kind never logged is undefined, not 0
    assert read["within"]["per_seed"] == pytest.approx({0: 1.2, 1: 1.5, 2: 1.1})
    assert read["neighbourhood"]["defined"] == 0 and math.isnan(read["neighbourhood"]["mean"])
    assert r2["per_seed"] == pytest.approx({0: 0.2, 1: 0.5, 2: 0.1})
    assert r2["mean"] == pytest.approx(0.8 / 3) and (r2["defined"], r2["of"]) == (20, 24)
    assert r2["per_pair"] == pytest.approx({"s1_s2": 0.2, "s2_s3": 1.0 / 3})
    assert 0.1 <= r2["ci"][0] <= r2["mean"] <= r2["ci"][1] <= 0.5


def test_stability_reports_the_largest_epoch_to_epoch_psnr_drop():
    budget = pc.Budget(configurations_run=(pc.OFF, pc.BOTH))
    history = [{f"lambda={lmbda:g}/val_psnr": v + (4.5 if lmbda == 0.018 and e == 2 else 0) for lmbda in LAMBDAS}
               for e, v in enumerate([14.0, 15.0, 16.0, 16.5])]         # 0.018: 14, 15, 20.5, 16.5: a 4 dB drop
    result = pc.stability({pc.OFF: {0: {"history": history}}}, budget)
    assert result[pc.OFF]["max_drop_db"] == pytest.approx(4.0)
    assert result[pc.OFF]["at"] == {"seed": 0, "lmbda": 0.018, "epoch": 4}


def test_val_curves_are_monotone_only_when_rate_and_psnr_rise_together_across_lambda():
    """Seed 0 rises in both; seed 1's PSNR does not (21.0, 21.0, 20.9, 23.0 dB); the mean still
    rises (20.5, 21.0, 21.45, 23.0 dB), so the mean curve is monotone while one seed of two is."""
    budget = pc.Budget(configurations_run=(pc.OFF, pc.BOTH))
    psnr = {0: (20.0, 21.0, 22.0, 23.0), 1: (21.0, 21.0, 20.9, 23.0)}
    runs = {pc.OFF: {seed: {"history": [{f"lambda={lmbda:g}/{m}": v for lmbda, b, q in zip(LAMBDAS, (0.1, 0.2, 0.3, 0.4), p)
                                         for m, v in (("val_bpp", b), ("val_psnr", q))}]}
                     for seed, p in psnr.items()}}
    result = pc.val_curves(runs, budget)[pc.OFF]
    assert (result["monotone"], result["seeds_monotone"], result["seeds"]) == (True, 1, 2)
    assert [p["psnr"] for p in result["points"]] == pytest.approx([20.5, 21.0, 21.45, 23.0])
    runs[pc.OFF][0]["history"][0]["lambda=0.054/val_bpp"] = 0.15       # mean bpp at the top λ 0.275 < 0.3 at 0.018
    assert pc.val_curves(runs, budget)[pc.OFF]["monotone"] is False


def test_finished_curves_are_skipped_and_an_interrupted_one_resumes_to_the_same_result(tmp_path, monkeypatch):
    monkeypatch.setenv("HPCM_TUNE_CACHE", str(tmp_path / "cache"))
    train = _folder(tmp_path / "train", [(80, 80), (72, 96)], 0)
    val = _folder(tmp_path / "val", [(128, 128)], 10)
    budget = pc.Budget(models=("DHIC_Tiny",), configurations_run=(pc.OFF, pc.BOTH), seeds=1, epochs=2,
                       steps_per_epoch=1, batch_size=2, patch_size=64, train_dataset=train, val_dataset=val)

    def config(out: Path):
        return budget.train_config("DHIC_Tiny", pc.BOTH, 0, out / pc.CHECKPOINT)

    reference = pc.train_one(config(tmp_path / "a"), (0.018,), tmp_path / "a", lambda _: None)
    assert reference["done"] and [m["epoch"] for m in reference["history"]] == [1, 2]

    import trainable.curve as curve

    original = curve.train_together

    def killed_in_epoch_2(runs, data, batches):
        if runs[0].epoch == 1:
            raise KeyboardInterrupt
        return original(runs, data, batches)

    monkeypatch.setattr(curve, "train_together", killed_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        pc.train_one(config(tmp_path / "b"), (0.018,), tmp_path / "b", lambda _: None)
    partial = json.loads((tmp_path / "b" / "history.json").read_text())
    assert not partial["done"] and len(partial["history"]) == 1
    monkeypatch.setattr(curve, "train_together", original)
    logs: list[str] = []
    resumed = pc.train_one(config(tmp_path / "b"), (0.018,), tmp_path / "b", logs.append)
    assert logs[0].startswith("resuming") and "after epoch 1" in logs[0]
    assert [m["lambda=0.018/val_loss"] for m in resumed["history"]] == \
        [m["lambda=0.018/val_loss"] for m in reference["history"]]

    def no_training(runs, data, batches):
        raise AssertionError("a finished curve was trained again")

    monkeypatch.setattr(curve, "train_together", no_training)
    logs.clear()
    again = pc.train_one(config(tmp_path / "b"), (0.018,), tmp_path / "b", logs.append)
    assert again == resumed and logs == []


def test_seed_bootstrap_is_a_geometric_mean_with_a_seed_interval():
    point, low, high = pc.seed_bootstrap(np.array([[2.0, 2.0], [0.5, 0.5]]), n_boot=500)
    assert point == pytest.approx(1.0) and low == pytest.approx(0.5) and high == pytest.approx(2.0)


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "0"], "error: --seeds must be >= 1, got 0"),
    (["--lambdas", "0.01", "0.02"], "error: BD-rate needs at least 4 λ values, got 2"),
    (["--models", "Nope"], "error: unknown model 'Nope'"),
    (["--configurations", "phase1+2"], "error: --configurations must start with off"),
    (["--configurations", "off", "phase3"], "error: --configurations must be distinct names from"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, tmp_path):
    assert run_cli(pc.main, [*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
