"""Code a held-out test set with the best configurations' final models, per image.

    python -m analysis.evaluate EXPERIMENT_DIR [--dataset DIR] [--top K] [--device auto|cpu|cuda]
        [--workers N [--address HOST:PORT]] [--train-dataset DIR] [--val-dataset DIR]

Picks off plus the ``K`` configurations with the lowest mean validation ``rd_score``
(TERMINATED trials only; configurations ASHA stopped never enter; rules in
:mod:`analysis.points`), loads every seed's ``model_final_lambda=<λ>.pth.tar`` from the
trial's latest checkpoint directory, codes every test image with real bitstreams
(``model.compress``, bits = 8 × total payload bytes) and decodes it (``model.decompress``),
and writes ``EXPERIMENT_DIR/evaluation/points.csv``: one row per configuration × seed × λ
× image with ``bpp`` (real), ``est_bpp`` (the entropy model's estimate), ``psnr`` and
``ms_ssim_db`` (of the decoded image clamped to [0, 1]; MS-SSIM is NaN for images with a
side under 161 px). Rows already in points.csv are kept (an interrupted evaluation resumes;
a larger ``--top`` adds configurations); rows are written in one order (configuration,
seed, λ, image), whichever path computed them.

The test set is the test split experiment.json records (else the built-in ``test`` split),
or ``--dataset``. It must be held out: a test image with the same pixels as any image of the
experiment's training or validation folder (a copy under another name counts) is refused
before anything is coded (:mod:`analysis.heldout`); ``evaluation/evaluation.json`` records
the test set and, under ``held_out``, what was compared (folders, image and distinct-digest
counts, ``checked: true``).

``--workers 1`` (default) codes the models one after the other in this process. ``--workers
N`` (N > 1, and more than one model to code) runs each (trial, λ) model as a Ray task, N at
once (:mod:`analysis.parallel`), on the cluster at ``--address`` / ``$RAY_ADDRESS`` or on a
local Ray started with N CPUs: GPU forward passes when the cluster has GPUs (each task a 1/N
share, at most one), rANS on the task's CPU. The points are the sequential path's, row for row,
except the timings ``encode_s``/``decode_s``: bitstreams and ``bpp`` always; on CPU, ``psnr``,
``est_bpp`` and ``ms_ssim_db`` bit for bit only at the same torch thread count (a task has one
thread; the sequential path, OMP_NUM_THREADS=1), otherwise within float rounding (measured
≤ 7.4e-7 dB PSNR at 2 or 4 threads). Bad input: one line on stderr, exit status 2.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .cli import ArgumentParser, run
from .errors import AnalysisError
from .experiment import CONFIG_PREFIX, load_experiment
from .heldout import check_held_out, recorded_test_dataset, used_datasets
from .parallel import run_on_ray
from .points import eligible_trials, evaluation_file, ranking, select_configurations

DEFAULT_TOP = 5
COLUMNS = ("configuration", "is_off", "seed", "lmbda", "image", "height", "width", "bpp", "est_bpp", "psnr",
           "ms_ssim_db", "trial_id", "encode_s", "decode_s")
CHECKPOINT_DIR = re.compile(r"^checkpoint_(\d+)$")


def evaluate(experiment_dir: str | os.PathLike[str], dataset: str | None = None, top: int = DEFAULT_TOP,
             device: str = "auto", workers: int = 1, address: str | None = None,
             used: dict[str, str | None] | None = None, log=print) -> Path:
    """Write (or complete) ``EXPERIMENT_DIR/evaluation/points.csv`` and return its path.

    ``used`` (split → folder) points at the experiment's training / validation folders when they
    are no longer where experiment.json says.
    """
    import torch

    from trainable.paths import check_device

    if workers < 1:
        raise AnalysisError(f"--workers must be >= 1, got {workers}")
    check_device(device)
    experiment = load_experiment(experiment_dir)
    chosen = select_configurations(experiment, top)
    trials = eligible_trials(experiment)
    trials = trials[trials["configuration"].isin(chosen)].sort_values(
        ["configuration", "seed"], key=lambda c: c.map(chosen.index) if c.name == "configuration" else c)
    manifest, held_out = _held_out_test_set(experiment, dataset, used)
    images = [(path, path.relative_to(manifest.root).as_posix(), size)
              for path, size in zip(manifest.files, manifest.sizes)]
    out = evaluation_file(experiment_dir)
    _check_same_set(out.parent / "evaluation.json", manifest.root, images)
    _write_json(out.parent / "evaluation.json", {
        "dataset": str(manifest.root),
        "images": [{"image": name, "width": w, "height": h} for _, name, (w, h) in images],
        "held_out": held_out,
        "top": top, "configurations": chosen,
        "ranking": ranking(experiment).to_dict("records"),
    })
    done = _read_points(out)
    have = set(zip(done["trial_id"], pd.to_numeric(done["lmbda"]).round(12), done["image"]))
    models = [(trial, lmbda) for trial in trials.to_dict("records") for lmbda in _lambdas(trial)]
    jobs = [(trial, lmbda, todo) for trial, lmbda in models
            if (todo := [image for image in images if (trial["trial_id"], round(lmbda, 12), image[1]) not in have])]
    for trial, lmbda, _ in jobs:
        _final_model(trial, lmbda)   # every model is there before any is coded
    parallel = workers > 1 and len(jobs) > 1
    target = device if parallel else str(torch.device(
        "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)))
    log(f"evaluating {len(chosen)} configurations ({', '.join(chosen)}), {len(trials)} trials, {len(models)} "
        f"models on {len(images)} images of {manifest.root} ({target}"
        f"{f', {workers} Ray workers' if parallel else ''}); held out: no image shared with "
        + ", ".join(f"{c['split']} ({c['images']} images)" for c in held_out["compared"]))
    order = {key: i for i, key in enumerate((t["trial_id"], round(lmbda, 12), name)
                                            for t, lmbda in models for _, name, _ in images)}
    rows = done.to_dict("records")
    finished = 0

    def merge(job, new: list[dict]) -> None:
        nonlocal finished
        trial, lmbda, _ = job
        finished += 1
        rows.extend(new)
        rows.sort(key=lambda r: order.get((r["trial_id"], round(float(r["lmbda"]), 12), r["image"]), len(order)))
        _write_points(out, rows)
        mean = pd.DataFrame(new)[["bpp", "psnr"]].mean()
        log(f"[{finished}/{len(jobs)}] {trial['configuration']} seed {trial['seed']} λ={lmbda:g}: {len(new)} "
            f"images, {mean['bpp']:.4f} bpp, {mean['psnr']:.2f} dB "
            f"({sum(r['encode_s'] + r['decode_s'] for r in new):.1f} s coding)")

    if parallel:
        run_on_ray(jobs, code_images, workers, device, address, merge)
    else:
        for job in jobs:
            merge(job, code_images(*job, torch.device(target)))
    if not rows:
        _write_points(out, rows)
    return out


def code_images(trial: dict, lmbda: float, images: list, device) -> list[dict]:
    """Load one λ model of one trial and code ``images`` with it."""
    import torch
    from pytorch_msssim import ms_ssim

    from trainable.codec import load_image, prepare_model, psnr
    from trainable.loss import MS_SSIM_MIN_SIDE, RateDistortionLoss, ms_ssim_db

    model = prepare_model(str(trial[CONFIG_PREFIX + "model_name"]), str(_final_model(trial, lmbda)), str(device))
    estimate = RateDistortionLoss(lmbda)
    rows = []
    with torch.no_grad():
        for path, name, (width, height) in images:
            x = load_image(path).to(device)
            est_bpp = float(estimate(model(x), x)["bpp"])
            start = time.perf_counter()
            coded = model.compress(x)
            encode_s = time.perf_counter() - start
            x_hat = model.decompress(coded["strings"], coded["shape"])["x_hat"].clamp(0, 1)
            decode_s = time.perf_counter() - start - encode_s
            bits = 8 * sum(len(s) for s in coded["strings"])
            quality = (ms_ssim_db(float(ms_ssim(x_hat, x, data_range=1.0)))
                       if min(height, width) >= MS_SSIM_MIN_SIDE else float("nan"))
            rows.append({
                "configuration": trial["configuration"], "is_off": bool(trial["is_off"]), "seed": trial["seed"],
                "lmbda": lmbda, "image": name, "height": height, "width": width, "bpp": bits / (height * width),
                "est_bpp": est_bpp, "psnr": psnr(x_hat, x), "ms_ssim_db": quality, "trial_id": trial["trial_id"],
                "encode_s": encode_s, "decode_s": decode_s,
            })
    return rows


def _held_out_test_set(experiment, dataset: str | None, used: dict[str, str | None] | None):
    """The test set's manifest and the record of its held-out check (refused when not held out)."""
    from trainable.data import dataset_manifest, resolve_dataset

    manifest = dataset_manifest(resolve_dataset(dataset or recorded_test_dataset(experiment.info), "test"))
    return manifest, check_held_out(manifest, used_datasets(experiment.info, experiment.path, used))


def _lambdas(trial: dict) -> list[float]:
    raw = trial.get(CONFIG_PREFIX + "lambdas")
    try:
        values = json.loads(raw) if isinstance(raw, str) else raw
        return [float(x) for x in values]
    except (TypeError, ValueError):
        raise AnalysisError(f"trial {trial['trial_id']}: params.json has no 'lambdas' list") from None


def _final_model(trial: dict, lmbda: float) -> Path:
    """``model_final_lambda=<λ>.pth.tar`` in the trial's latest checkpoint directory holding it."""
    from trainable.curve import final_model_name

    name = final_model_name(lmbda)
    folder = Path(trial["trial_dir"])
    checkpoints = sorted((int(m.group(1)), d) for d in folder.iterdir()
                         if d.is_dir() and (m := CHECKPOINT_DIR.match(d.name)))
    for _, checkpoint in reversed(checkpoints):
        if (checkpoint / name).is_file():
            return checkpoint / name
    raise AnalysisError(f"trial {trial['trial_id']} ({trial['configuration']}, seed {trial['seed']}): no {name} in "
                        f"any checkpoint_* directory of {folder}")


def _check_same_set(info_file: Path, root: Path, images: list) -> None:
    if not info_file.is_file():
        return
    try:
        info = json.loads(info_file.read_text())
        before = (info["dataset"], [entry["image"] for entry in info["images"]])
    except (ValueError, KeyError, TypeError):
        raise AnalysisError(f"unreadable {info_file}; remove the evaluation folder to start again") from None
    if before != (str(root), [name for _, name, _ in images]):
        raise AnalysisError(f"{info_file.parent} holds an evaluation on {before[0]} ({len(before[1])} images); "
                            f"move it away to evaluate on {root} ({len(images)} images)")


def _read_points(path: Path) -> pd.DataFrame:
    if not path.is_file():
        return pd.DataFrame(columns=COLUMNS)
    try:
        points = pd.read_csv(path, dtype={"trial_id": str, "configuration": str, "image": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise AnalysisError(f"unreadable {path}: {exc}".splitlines()[0]) from None
    missing = [column for column in COLUMNS if column not in points]
    if missing:
        raise AnalysisError(f"{path} has no '{missing[0]}' column; remove it to start again")
    return points[list(COLUMNS)]


def _write_points(path: Path, rows: list[dict]) -> None:
    _atomic(path, pd.DataFrame(rows, columns=COLUMNS).to_csv(index=False))


def _write_json(path: Path, data: dict) -> None:
    _atomic(path, json.dumps(data, indent=1, default=str) + "\n")


def _atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    from trainable.errors import InputError

    def body() -> Path:
        args = _parser().parse_args(argv)
        return evaluate(args.experiment, args.dataset, args.top, args.device, args.workers, args.address,
                        {"train": args.train_dataset, "val": args.val_dataset})

    return run("analysis.evaluate", body, errors=(InputError,))


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m analysis.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("experiment", help="experiment directory (STORAGE/NAME of search.run)")
    parser.add_argument("--dataset", help="test image folder (default: the test split experiment.json records, "
                                          "else the built-in test split)")
    parser.add_argument("--top", type=int, default=DEFAULT_TOP,
                        help=f"configurations besides off, best validation rd_score first (default {DEFAULT_TOP})")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1 ...")
    parser.add_argument("--workers", type=int, default=1,
                        help="models coded at once as Ray tasks (default 1: sequential, no Ray)")
    parser.add_argument("--address", help="Ray cluster for --workers > 1 (default: $RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--train-dataset", help="the experiment's training folder, when no longer where "
                                                "experiment.json says (for the held-out check)")
    parser.add_argument("--val-dataset", help="the experiment's validation folder, likewise")
    return parser


if __name__ == "__main__":
    sys.exit(main())
