"""``python -m analysis.evaluate`` on a real (Ray-free) experiment: real HPCM_Tiny models trained
with ``trainable.curve.train_curve``, real bitstreams, and the report built on them.

The experiment fixture is the layout ``search.run`` writes (params.json, result.json,
checkpoint_*/, results.csv, experiment.json) filled by the project's own training code:
every metric in it was measured, none is a constant. Built once per session (~30 s on 2 cores)
and shared with tests/test_analysis.py through :func:`real_experiment_dir`.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from analysis.evaluate import main as evaluate_main
from analysis.report import main as report_main
from tests.helpers import image

REPO = Path(__file__).resolve().parents[1]
LAMBDAS = (0.002, 0.006, 0.018, 0.054)
EPOCHS = 2
# configuration id -> (TrainConfig overrides, seeds, final status); ASHA stops one at epoch 1.
CONFIGURATIONS = {
    "off": ({}, (0, 1), "TERMINATED"),
    "delta=0.1": ({"phase2_reg": True, "delta": 0.1}, (0, 1), "TERMINATED"),
    "delta=0.3": ({"phase2_reg": True, "delta": 0.3}, (0,), "STOPPED"),
}
TEST_SIZES = ((72, 100), (90, 130), (168, 170))   # the last one is large enough for MS-SSIM


def _write_images(folder: Path, sizes, seed: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, (h, w) in enumerate(sizes):
        array = (image(h, w, seed=seed + index)[0].permute(1, 2, 0).numpy() * 255).round().astype("uint8")
        Image.fromarray(array).save(folder / f"img{index}.png")
    return folder


def build_experiment(root: Path) -> Path:
    """Train every configuration × seed at every λ with train_curve, in search.run's layout."""
    from trainable.config import TrainConfig
    from trainable.curve import CurveConfig, train_curve

    data = root / "data"
    train = _write_images(data / "train", [(96, 128), (112, 100), (128, 128), (100, 140)], seed=10)
    val = _write_images(data / "val", [(80, 110), (96, 90)], seed=20)
    _write_images(data / "test", TEST_SIZES, seed=30)
    exp = root / "exp"
    base = TrainConfig(model_name="HPCM_Tiny", train_dataset=str(train), test_dataset=str(val), epochs=EPOCHS,
                       batch_size=2, learning_rate=3e-3, patch_size=64, steps_per_epoch=3, num_workers=0,
                       device="cpu", save_best=False)
    rows = []
    index = 0
    for configuration, (overrides, seeds, status) in CONFIGURATIONS.items():
        for seed in seeds:
            trial_id = f"f00d{index:01x}_{index:05d}"
            trial_dir = exp / f"train_curve_{trial_id}_{index}_seed={seed}"
            work = root / "work" / trial_id
            config = replace(base, seed=seed, save_path=str(work), **overrides)
            params = {**config.to_dict(), "configuration": configuration, "is_off": configuration == "off",
                      "seed": seed, "lambdas": list(LAMBDAS)}
            for key in ("lmbda", "save_path"):
                params.pop(key, None)
            trial_dir.mkdir(parents=True)
            (trial_dir / "params.json").write_text(json.dumps(params))
            epochs = 1 if status == "STOPPED" else EPOCHS
            history = []

            def report(metrics, checkpoint_dir, trial_dir=trial_dir, history=history, trial_id=trial_id):
                epoch = int(metrics["epoch"])
                target = trial_dir / f"checkpoint_{epoch - 1:06d}"
                shutil.copytree(checkpoint_dir, target)
                record = {**metrics, "trial_id": trial_id, "training_iteration": epoch, "done": False}
                history.append(record)
                with open(trial_dir / "result.json", "a") as handle:
                    handle.write(json.dumps(record) + "\n")

            train_curve(CurveConfig(replace(config, epochs=epochs), LAMBDAS), report)
            last = history[-1]
            rows.append({
                "trial_id": trial_id, "trial_dir": str(trial_dir), "configuration": configuration,
                "is_off": configuration == "off", "seed": seed, "status": status, "epochs_run": len(history),
                "stopped_epoch": len(history) if status == "STOPPED" else math.nan, "rd_score": last["rd_score"],
                "error": "", **{k: v for k, v in last.items() if k.startswith("lambda=")},
                **{f"config/{k}": v for k, v in params.items()},
            })
            index += 1
    # An errored trial: params.json and error.txt, nothing reported.
    errored = exp / "train_curve_f00df_00099_99_seed=2"
    errored.mkdir()
    (errored / "params.json").write_text(json.dumps({**params, "configuration": "delta=0.1", "is_off": False,
                                                     "seed": 2, "phase2_reg": True, "delta": 0.1}))
    (errored / "error.txt").write_text("error: non-finite loss (nan) at epoch 1, step 3\n")
    rows.append({"trial_id": "f00df_00099", "trial_dir": str(errored), "configuration": "delta=0.1",
                 "is_off": False, "seed": 2, "status": "ERROR", "epochs_run": 0, "stopped_epoch": math.nan,
                 "rd_score": math.nan, "error": "error: non-finite loss (nan) at epoch 1, step 3"})
    pd.DataFrame(rows).to_csv(exp / "results.csv", index=False)
    (exp / "experiment.json").write_text(json.dumps({
        "name": "fixture", "lambdas": list(LAMBDAS), "seeds": 2, "max_epochs": EPOCHS, "model": "HPCM_Tiny",
        "datasets": {"train": str(train), "val": str(val), "test": str(data / "test")}}))
    shutil.rmtree(root / "work")
    for curve_checkpoint in exp.glob("*/checkpoint_*/curve_last.pth.tar"):
        curve_checkpoint.unlink()   # 23 MB each, never read by analysis: keeps copies of the fixture cheap
    return exp


def _built(tmp_path_factory, name: str, build) -> Path:
    """``build(folder)`` once per session under the session's base temp folder (one thread: a tiny model
    trains faster on one, and far faster on a busy machine)."""
    import torch

    folder = tmp_path_factory.getbasetemp() / name
    if not (folder / "exp" / "results.csv").is_file():
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            build(folder)
        finally:
            torch.set_num_threads(threads)
    return folder


def real_experiment_dir(tmp_path_factory) -> Path:
    """The session's trained experiment: FOLDER/exp (the experiment) and FOLDER/data/{train,val,test}."""
    return _built(tmp_path_factory, "real_experiment", build_experiment)


def evaluated_experiment_dir(tmp_path_factory) -> Path:
    """The same experiment after ``analysis.evaluate`` on FOLDER/data/test (top 5): FOLDER/exp."""
    source = real_experiment_dir(tmp_path_factory)

    def build(folder: Path) -> None:
        copy = copy_experiment(source / "exp", folder / "exp.tmp")
        assert evaluate_main([str(copy), "--dataset", str(source / "data" / "test"), "--device", "cpu"]) == 0
        copy.rename(folder / "exp")

    return _built(tmp_path_factory, "evaluated_experiment", build)


def copy_experiment(exp: Path, target: Path) -> Path:
    shutil.copytree(exp, target)
    return target


@pytest.fixture
def experiment(tmp_path_factory, tmp_path) -> Path:
    return copy_experiment(real_experiment_dir(tmp_path_factory) / "exp", tmp_path / "exp")


@pytest.fixture
def test_images(tmp_path_factory) -> Path:
    return real_experiment_dir(tmp_path_factory) / "data" / "test"


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _evaluate(exp: Path, dataset: Path | str, *extra: str, workers: int = 1, log=None) -> int:
    from analysis.evaluate import evaluate

    lines = []
    top = int(extra[extra.index("--top") + 1]) if "--top" in extra else 5
    evaluate(exp, str(dataset), top=top, device="cpu", workers=workers, log=lines.append)
    if workers > 1:
        assert f"{workers} Ray workers" in lines[0]
    return sum(line.startswith("[") for line in lines)


# --- evaluate ------------------------------------------------------------------------------------

def test_evaluate_codes_every_eligible_trial_with_real_bitstreams(experiment, test_images):
    from trainable.codec import load_image, prepare_model
    from trainable.curve import final_model_name

    assert _evaluate(experiment, test_images) == 2 * 2 * len(LAMBDAS)
    points = pd.read_csv(experiment / "evaluation" / "points.csv")
    assert len(points) == 2 * 2 * len(LAMBDAS) * len(TEST_SIZES)   # off + delta=0.1, 2 seeds, every λ and image
    assert set(points["configuration"]) == {"off", "delta=0.1"}      # ASHA-stopped delta=0.3 never enters
    assert set(points["seed"]) == {0, 1} and set(points["trial_id"]) & {"f00df_00099"} == set()   # errored seed 2
    assert sorted(points["lmbda"].unique()) == list(LAMBDAS)
    assert {(int(r.height), int(r.width)) for r in points.itertuples()} == set(TEST_SIZES)
    large = points["height"] >= 161
    assert points.loc[large, "ms_ssim_db"].notna().all() and points.loc[~large, "ms_ssim_db"].isna().all()
    # bpp is 8 x the payload bytes of a real bitstream: recode one image with that trial's final model.
    row = points[(points["configuration"] == "delta=0.1") & (points["image"] == "img1.png")].iloc[0]
    trial = next(d for d in experiment.iterdir() if row["trial_id"] in d.name)
    weights = sorted(trial.glob(f"checkpoint_*/{final_model_name(row['lmbda'])}"))[-1]
    model = prepare_model("HPCM_Tiny", str(weights), "cpu")
    strings = model.compress(load_image(test_images / "img1.png"))["strings"]
    assert row["bpp"] == pytest.approx(8 * sum(map(len, strings)) / (row["height"] * row["width"]), rel=1e-12)
    info = json.loads((experiment / "evaluation" / "evaluation.json").read_text())
    assert info["configurations"] == ["off", "delta=0.1"] and len(info["images"]) == len(TEST_SIZES)


def test_evaluate_resumes_and_top_k_limits_configurations(experiment, test_images):
    assert _evaluate(experiment, test_images, "--top", "0") == 2 * len(LAMBDAS)   # off only
    assert set(pd.read_csv(experiment / "evaluation" / "points.csv")["configuration"]) == {"off"}
    assert _evaluate(experiment, test_images, "--top", "0") == 0                   # nothing left to code
    points_file = experiment / "evaluation" / "points.csv"
    points = pd.read_csv(points_file)
    points.iloc[:-1].to_csv(points_file, index=False)                             # an interrupted run
    assert _evaluate(experiment, test_images, "--top", "0") == 1                   # recodes one model, one image
    assert len(pd.read_csv(points_file)) == len(points)
    assert _evaluate(experiment, test_images, "--top", "1") == 2 * len(LAMBDAS)    # a larger K adds delta=0.1


def test_evaluate_refuses_another_test_set_and_a_missing_model(experiment, test_images, tmp_path, capsys):
    _evaluate(experiment, test_images, "--top", "0")
    other = _write_images(tmp_path / "other", [(64, 80)], seed=5)
    assert evaluate_main([str(experiment), "--dataset", str(other), "--top", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds an evaluation on" in err and "move it away" in err
    shutil.rmtree(experiment / "evaluation")
    missing = next(experiment.glob("*seed=1/checkpoint_000001/model_final_lambda=0.006.pth.tar"))
    missing.unlink()
    assert evaluate_main([str(experiment), "--dataset", str(test_images), "--top", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no model_final_lambda=0.006.pth.tar" in err


def test_evaluate_defaults_to_the_recorded_test_split(tmp_path_factory, tmp_path):
    exp = copy_experiment(evaluated_experiment_dir(tmp_path_factory) / "exp", tmp_path / "exp")
    # evaluated on data/test, the split experiment.json records: nothing left to code (another set is refused)
    assert _evaluate(exp, "") == 0


def test_evaluate_cli_defaults_to_the_builtin_test_split(experiment, tmp_path_factory):
    """An experiment on the built-in splits records no test split: the built-in one, checked held out."""
    from trainable.data import SPLITS, sample_dataset_dir

    cache = tmp_path_factory.getbasetemp() / "cache"
    env = {**__import__("os").environ, "HPCM_TUNE_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    info = json.loads((experiment / "experiment.json").read_text())
    info["datasets"] = {split: str(sample_dataset_dir(split, cache / "sample")) for split in ("train", "val")}
    (experiment / "experiment.json").write_text(json.dumps(info))
    run = subprocess.run([sys.executable, "-m", "analysis.evaluate", str(experiment), "--top", "0"],
                         capture_output=True, text=True, cwd=REPO, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    points = pd.read_csv(experiment / "evaluation" / "points.csv")
    assert set(points["image"]) == {f"{name}.png" for name in SPLITS["test"]}
    assert (points["height"] % 64 != 0).all() and points["psnr"].notna().all()
    held_out = json.loads((experiment / "evaluation" / "evaluation.json").read_text())["held_out"]
    assert held_out["checked"] and [c["images"] for c in held_out["compared"]] == [len(SPLITS["train"]), len(SPLITS["val"])]


def test_parallel_evaluation_on_ray_gives_the_sequential_points(tmp_path_factory, tmp_path, test_images):
    """Ray tasks on a local Ray with 2 CPUs, resuming an interrupted evaluation (one model done, one
    half done, a task failed on a corrupt model): the same points.csv as the sequential evaluation,
    row for row (timings aside)."""
    from analysis.errors import AnalysisError

    sequential = evaluated_experiment_dir(tmp_path_factory) / "exp" / "evaluation" / "points.csv"
    exp = copy_experiment(sequential.parents[1], tmp_path / "exp")
    points_file = exp / "evaluation" / "points.csv"
    pd.read_csv(points_file).iloc[:len(TEST_SIZES) + 2].to_csv(points_file, index=False)
    off_seed_1 = next(d for d in sorted(exp.glob("*seed=1")) if json.loads((d / "params.json").read_text())["is_off"])
    corrupt = sorted(off_seed_1.glob("checkpoint_*/model_final_lambda=0.054.pth.tar"))[-1]   # the 8th of 16 models
    good = corrupt.read_bytes()
    corrupt.write_bytes(good[:1000])
    with pytest.raises(AnalysisError, match=r"^off seed 1 λ=0\.054 failed in a Ray task: corrupt or unreadable "
                                            r"checkpoint .*; run again to resume\)$"):
        _evaluate(exp, test_images, workers=2)
    # the models before it are saved (those under way finished too), and are the sequential points
    kept = pd.read_csv(points_file).drop(columns=["encode_s", "decode_s"])
    assert len(kept) >= 7 * len(TEST_SIZES)
    merged = kept.merge(pd.read_csv(sequential), on=["trial_id", "lmbda", "image"], suffixes=("", "_seq"))
    assert len(merged) == len(kept) and (merged["bpp"] == merged["bpp_seq"]).all()
    assert (merged["psnr"] == merged["psnr_seq"]).all()
    corrupt.write_bytes(good)
    assert _evaluate(exp, test_images, workers=2) == 2 * 2 * len(LAMBDAS) - len(kept) // len(TEST_SIZES)
    timings = ["encode_s", "decode_s"]
    got, want = pd.read_csv(points_file), pd.read_csv(sequential)
    assert len(got) == 2 * 2 * len(LAMBDAS) * len(TEST_SIZES)
    pd.testing.assert_frame_equal(got.drop(columns=timings), want.drop(columns=timings), check_exact=True)


@pytest.mark.parametrize("cluster, workers, device, share", [
    ({"CPU": 16.0}, 4, "auto", {}),                      # no GPU: forward and rANS on the task's CPU
    ({"CPU": 16.0, "GPU": 8.0}, 16, "auto", {"num_gpus": 0.5}),
    ({"CPU": 16.0, "GPU": 8.0}, 4, "cuda", {"num_gpus": 1.0}),   # never more than one GPU per model
    ({"CPU": 16.0, "GPU": 8.0}, 4, "cpu", {}),
])
def test_parallel_tasks_share_the_gpus_evenly(cluster, workers, device, share):
    from analysis.parallel import gpu_share

    assert gpu_share(cluster, workers, device) == share


def test_parallel_refuses_cuda_on_a_cluster_without_gpus():
    from analysis.errors import AnalysisError
    from analysis.parallel import gpu_share

    with pytest.raises(AnalysisError, match="the Ray cluster has no GPU"):
        gpu_share({"CPU": 16.0}, 4, "cuda")


def test_evaluate_bad_input_is_one_line(tmp_path, capsys):
    assert evaluate_main([str(tmp_path / "nope")]) == 2
    assert "experiment directory not found" in capsys.readouterr().err
    assert evaluate_main([str(tmp_path), "--top", "x"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert evaluate_main([str(tmp_path), "--workers", "0"]) == 2
    assert "--workers must be >= 1" in capsys.readouterr().err


# --- the report on real evaluated models ---------------------------------------------------------

def test_report_on_real_evaluation(tmp_path_factory, tmp_path):
    exp = copy_experiment(evaluated_experiment_dir(tmp_path_factory) / "exp", tmp_path / "exp")
    assert report_main([str(exp), "--anchor", "kodak:VTM"]) == 0
    table = pd.read_csv(exp / "report" / "bd_rate.csv")
    assert list(table["configuration"]) == ["off", "delta=0.1"] and "delta=0.3" not in set(table["configuration"])
    assert table.loc[0, "bd_rate_vs_off"] == 0 and table.loc[0, "status"] == "reference"
    assert (table["n_seeds"] == 2).all() and table.loc[0, "n_images"] == len(TEST_SIZES)
    # delta=0.1's seed 2 errored: "incomplete", not judged on seeds 0 and 1 (issue 15.6)
    assert table.loc[1, "status"].startswith("incomplete: seed 2 errored") and math.isnan(table.loc[1, "bd_rate_vs_off"])
    text = (exp / "report" / "report.md").read_text()
    assert "TEST set, checked held out (no image shared with train, val)" in text and "NO VERDICT" not in text
    assert "anchor kodak:VTM not compared: the evaluation set has 3 images, kodak has 24" in text
    assert "| `delta=0.3` | 0 | 1 |" in text   # stopped by ASHA at epoch 1, listed apart
    # what Phase 2 changed: the R² of every eligible configuration at its last epoch, next to off's
    section = text.split("## What Phase 2 changed: inter-scale R²")[1].split("\n## ")[0]
    assert "| configuration | R² s1_s2 | CKA s1_s2 | R² s2_s3 | CKA s2_s3 |" in section
    assert "Latents read: HPCM_Tiny `new`." in section     # the model's declared latents, named
    r2, cka = r"-?\d\.\d{3} \([+-]\d\.\d{3}\) \[-?\d\.\d{2}, -?\d\.\d{2}\]", r"-?\d\.\d{3} \([+-]\d\.\d{3}\)"
    assert re.search(rf"\| delta=0\.1 \| {r2} \| {cka} \| {r2} \| {cka} \|", section), section
    off_r2, off_cka = r"-?\d\.\d{3} \[-?\d\.\d{2}, -?\d\.\d{2}\]", r"-?\d\.\d{3}"
    assert re.search(rf"\| off \| {off_r2} \| {off_cka} \| {off_r2} \| {off_cka} \|", section), section
    assert "delta=0.3" not in section
    # an evaluation without the held-out record (made before the check existed) is not called held out
    record = exp / "evaluation" / "evaluation.json"
    record.write_text(json.dumps({k: v for k, v in json.loads(record.read_text()).items() if k != "held_out"}))
    assert report_main([str(exp)]) == 0
    assert "held-out NOT checked" in (exp / "report" / "report.md").read_text()
