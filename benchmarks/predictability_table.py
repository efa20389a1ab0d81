"""What the Phase 2 charge and the predictability measure read, against known truth and on trained models.

    python -m benchmarks.predictability_table [--part synthetic|coverage|coverage-s2_s3|coverage-kodak|cost|batch|
        neighbourhood-charge|aligner-cost|gradients|trained|all]
        [--seeds 3] [--steps 300] [--kodak-images 24] [--out benchmarks/results/predictability.json]

* ``synthetic``: fields of known inter-scale R^2 at HPCM_Tiny's s1_s2 on 24 Kodak-sized images
  (8 x 12 coarse grid, 32 channels, 128 sub-band features): independent, one linear map (R^2 0.5),
  a different map per image, |W haar(fine)| + noise, the map shifted by one position (white fine
  latent), linear 0.8 in the left half only. Truth: the oracle's R^2 (the generator's own signal
  as the prediction). Readings: the three kinds of ``scale_predictability`` and the cross-image CKA.
* ``coverage`` / ``coverage-s2_s3`` / ``coverage-kodak``: how often the measure's interval holds the
  truth (R^2 0 and 0.5) on the three validation images' s1 / s2 grids / on ``--kodak-images`` (24)
  Kodak-sized images.
* ``cost``: seconds per validation of each kind (HPCM_Tiny, the three validation images' grids).
* ``batch``: the training charge's R^2 (1 - reading) at batch 1, 4, 8, 16 on a fixed linear map of
  true R^2 0.5 (Tiny s1_s2 on 256 crops: 4 x 4 grid), after ~64 images, and a fit on the batch
  alone (the charge before it pooled recent images).
* ``neighbourhood-charge``: ``crossfit`` vs ``crossfit_neighbourhood`` at batch 8 on independent
  scales, a linear map (R^2 0.5) and the map shifted by one position, on 4 x 4 and 8 x 8 grids.
* ``aligner-cost``: seconds of the Phase 2 term per aligner and alignment, HPCM_Tiny and HPCM_Base.
* ``gradients``: per parameter group, the norm of the RD loss's gradient and the Phase 2 term's
  (delta 1) at initialisation: what the term trains on each model (and on DHIC_Tiny with its
  coded residuals, ``--scale-latents new``).
* ``trained``: HPCM_Tiny and DHIC_Tiny trained off and with Phase 2 repel (delta 0.1, the default
  aligner and latents) for ``--steps`` steps (batch 4, 128 crops) per seed: per pair, the
  validation measure's three kinds, the charge and its fresh estimate, and the cross measure
  applied to the training crops (the charge's data) to explain where charge and measure differ.

Writes (merging parts) ``--out`` with the date and machine; prints the tables.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from trainable.regularizers import InterScaleRegularizer, dwt_features, predictability_report, scale_predictability
from trainable.regularizers.ridge import RIDGES, cross_fitted

KINDS = ("cross", "within", "neighbourhood")
C, GRID, IMAGES = 32, (8, 12), 24


def _smooth(rng: np.random.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.from_numpy(gaussian_filter(rng.standard_normal(shape), sigma=(0,) * (len(shape) - 2) + (1.5, 1.5)))


def _centred(t: torch.Tensor) -> torch.Tensor:
    return t - t.mean((-2, -1), keepdim=True)


def synthetic_case(name: str, seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor], float]:
    """(coarse, fine, true R^2) per image for case ``name``."""
    rng = np.random.default_rng(seed)
    h, w = GRID
    white = name == "shifted by one"
    fine = [torch.from_numpy(rng.standard_normal((C, 2 * h, 2 * w))) if white else _smooth(rng, (C, 2 * h, 2 * w))
            for _ in range(IMAGES)]
    noise = [_centred(_smooth(rng, (C, h, w))) for _ in range(IMAGES)]
    bands = [dwt_features(f.unsqueeze(0), "subbands")[0] for f in fine]
    shared = torch.from_numpy(rng.standard_normal((C, 4 * C)))
    maps = [torch.from_numpy(rng.standard_normal((C, 4 * C))) if name == "per-image map" else shared for _ in bands]
    signal = [torch.einsum("cd,dhw->chw", m, b) for m, b in zip(maps, bands)]
    r = {"independent": 0.0, "linear 0.5": 0.5, "per-image map": 0.99, "|W haar| + noise": 0.85,
         "shifted by one": 0.5, "left half only": 0.8}[name]
    if name == "|W haar| + noise":
        signal = [s.abs() for s in signal]
    if name == "shifted by one":
        signal = [torch.roll(s, 1, -1) for s in signal]
    signal = [_centred(s) for s in signal]
    scale = torch.cat([s.flatten() for s in signal]).std() / torch.cat([n.flatten() for n in noise]).std()
    mixed = [math.sqrt(r) * s / scale + math.sqrt(1 - r) * n for s, n in zip(signal, noise)] if r else noise
    if name == "left half only":
        mixed = [torch.cat([m[..., : w // 2], n[..., w // 2:]], -1) for m, n in zip(mixed, noise)]
        mixed = [_centred(m) for m in mixed]
    # the oracle: the generator's own signal part (centred) as the prediction
    oracle = [m - math.sqrt(1 - r) * n if name != "left half only" else
              _centred(torch.cat([math.sqrt(r) * s[..., : w // 2] / scale, torch.zeros_like(s[..., w // 2:])], -1))
              for m, s, n in zip(mixed, signal, noise)]
    truth = 1 - sum(float((m - o).pow(2).sum()) for m, o in zip(mixed, oracle)) / sum(float(m.pow(2).sum()) for m in mixed)
    return mixed, fine, truth


def synthetic(replications: int = 2) -> dict:
    out = {}
    for name in ("independent", "linear 0.5", "per-image map", "|W haar| + noise", "shifted by one", "left half only"):
        rows = []
        for seed in range(replications):
            coarse, fine, truth = synthetic_case(name, seed)
            report = predictability_report(coarse, fine, resamples=0)
            rows.append({"truth": truth, "cross": report.r2, "cka": report.cka,
                         **{k: scale_predictability(coarse, fine, k) for k in KINDS[1:]}})
        out[name] = {"replications": replications, **{k: float(np.mean([r[k] for r in rows])) for k in rows[0]}}
        print(name, {k: round(v, 3) for k, v in out[name].items()}, flush=True)
    return out


def coverage(kodak_images: int = 0, replications: int = 10, scale: int = 1) -> dict:
    """How often the measure's 95 % interval (images resampled and refitted) holds the true R^2,
    at HPCM_Tiny's s1 grids (``scale`` 2: its s2 grids, the s2_s3 pair) on the three validation
    images or (``kodak_images`` > 0) on that many Kodak-sized ones."""
    from tests.test_predictability import KODAK, VALIDATION, fields, s1_grids

    channels, grids = s1_grids("HPCM_Tiny", KODAK[:kodak_images] if kodak_images else VALIDATION)
    grids = [(h * scale, w * scale) for h, w in grids]
    out: dict = {"images": len(grids)}
    for r in (0.0, 0.5):
        reports = [predictability_report(*fields(channels, grids, r, 500 + seed), seed=seed) for seed in range(replications)]
        out[str(r)] = {"replications": replications, "mean R2": float(np.mean([p.r2 for p in reports])),
                       "covered": sum(p.low <= r <= p.high for p in reports),
                       "mean interval": [float(np.mean([p.low for p in reports])), float(np.mean([p.high for p in reports]))]}
        print("coverage", len(grids), r, out[str(r)], flush=True)
    return out


def cost(repeats: int = 3) -> dict:
    """Seconds per validation of each kind on one thread: HPCM_Tiny's two pairs (s1_s2, s2_s3) on
    the three validation images' grids, smooth independent fields (the cost does not depend on
    the values); ``cross`` with and without its refitted interval. Best of ``repeats``."""
    from tests.test_predictability import VALIDATION, fields, s1_grids

    channels, grids = s1_grids("HPCM_Tiny", VALIDATION)
    pairs = [fields(channels, [(h * f, w * f) for h, w in grids], 0.0, f) for f in (1, 2)]   # s1_s2, s2_s3
    calls = {"cross with interval": lambda c, f: predictability_report(c, f),
             **{k: (lambda c, f, k=k: scale_predictability(c, f, k)) for k in KINDS}}
    out = {}
    for name, call in calls.items():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for coarse, fine in pairs:
                call(coarse, fine)
            times.append(time.perf_counter() - start)
        out[name] = min(times)
        print("cost", name, round(out[name], 3), flush=True)
    return out


def _mapped_batch(mix: torch.Tensor, size: int, h: int, r: float, seed: int, shifted: bool = False):
    """(coarse, fine, oracle R^2) of one batch: coarse = ``mix`` applied to the finer latent's sub-bands
    (one position to the left, no wrap-around, when ``shifted``: a white finer latent then, as in
    ``synthetic``) plus independent smooth noise, true R^2 ``r``; r = 0 is the noise alone."""
    rng = np.random.default_rng(seed)
    c = mix.shape[0]
    fine = torch.from_numpy(rng.standard_normal((size, c, 2 * h, 2 * h))) if shifted else _smooth(rng, (size, c, 2 * h, 2 * h))
    noise = _centred(_smooth(rng, (size, c, h, h)))
    signal = torch.einsum("cd,bdhw->bchw", mix, dwt_features(fine, "subbands"))
    if shifted:
        signal = torch.cat([torch.zeros_like(signal[..., :1]), signal[..., :-1]], -1)
    signal = _centred(signal)
    signal, noise = math.sqrt(r) * signal / signal.std(), math.sqrt(1 - r) * noise / noise.std()
    coarse = signal + noise
    return coarse.float(), fine.float(), 1 - float(noise.pow(2).sum() / coarse.double().pow(2).sum())


def _stream(mix: torch.Tensor, size: int, h: int, r: float, seed: int, shifted: bool = False):
    """The batches a charge sees in these parts: ~64 images, then 8 batches more (the ones read)."""
    return (_mapped_batch(mix, size, h, r, seed + step, shifted) for step in range(64 // size + 8))


def batch_sizes(r: float = 0.5) -> dict:
    """The charge's R^2 and a batch-only fit's at every batch size, on one fixed map of true R^2 ``r``."""
    h = 4
    mix = torch.randn(C, 4 * C, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ridges = torch.tensor(RIDGES)
    out = {}
    for size in (1, 4, 8, 16):
        reg = InterScaleRegularizer((C, C), delta=1.0, scale_latents="full")
        charge, alone, truth = [], [], []
        for coarse, fine, oracle in _stream(mix, size, h, r, 1000 * size):
            charge.append(1 - float(reg([coarse, fine])[1]["s1_s2"]))
            predictions, target = cross_fitted(dwt_features(fine, "subbands"), coarse, ridges, detach_fit=True)
            alone.append(1 - float((target - predictions).pow(2).flatten(1).sum(1).min() / target.pow(2).sum()))
            truth.append(oracle)
        out[str(size)] = {"truth": float(np.mean(truth)), "charge": float(np.mean(charge[-8:])),
                          "batch-only fit": float(np.mean(alone[-8:]))}
        print("batch", size, {k: round(v, 3) for k, v in out[str(size)].items()}, flush=True)
    return out


NEIGHBOURHOOD_CASES = {"independent": (0.0, False), "linear 0.5": (0.5, False), "shifted by one": (0.5, True)}


def neighbourhood_charge(size: int = 8) -> dict:
    """``crossfit`` vs ``crossfit_neighbourhood`` at batch ``size`` after ~64 images, on the 4 x 4 (256
    crops) and 8 x 8 (512 crops) s1 grids of HPCM_Tiny's s1_s2: the charge's R^2 (mean of the last 8
    batches), its fresh estimate's (``sampled``, the last ~64 images) and the oracle's."""
    mix = torch.randn(C, 4 * C, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = {}
    for h in (4, 8):
        for case, (r, shifted) in NEIGHBOURHOOD_CASES.items():
            for aligner in ("crossfit", "crossfit_neighbourhood"):
                reg = InterScaleRegularizer((C, C), delta=1.0, aligner=aligner, scale_latents="full")
                charge, truth = [], []
                for coarse, fine, oracle in _stream(mix, size, h, r, 1000 * h, shifted):
                    charge.append(1 - float(reg([coarse, fine])[1]["s1_s2"]))
                    truth.append(oracle)
                row = {"truth": float(np.mean(truth)), "charge": float(np.mean(charge[-8:])),
                       "fresh": 1 - reg.sampled()["inter_scale_fresh_s1_s2"]}
                out[f"{h}x{h} {case} {aligner}"] = row
                print("neighbourhood charge", h, case, aligner, {k: round(v, 3) for k, v in row.items()}, flush=True)
    return out


def aligner_cost(repeats: int = 3) -> dict:
    """Seconds of the Phase 2 term (forward + backward to the latents, one thread) per aligner and
    alignment on HPCM_Tiny's and HPCM_Base's latent shapes for a batch of two 256 crops (s1 4 x 4,
    s2 8 x 8, s3 16 x 16; the values do not change the cost). Median of ``repeats`` after a warm-up,
    interleaved (``regularizer_overhead.timed_terms``)."""
    from trainable.models import create_model

    from .regularizer_overhead import timed_terms

    out = {}
    for model in ("HPCM_Tiny", "HPCM_Base"):
        channels = create_model(model).scale_channels
        latents = [torch.randn(2, c, 4 * 2 ** k, 4 * 2 ** k) for k, c in enumerate(channels)]
        regs = {f"{a} ({alignment})": InterScaleRegularizer(channels, aligner=a, alignment=alignment, scale_latents="full")
                for a, alignment in (("crossfit", "subbands"), ("crossfit_neighbourhood", "subbands"),
                                     ("crossfit", "ll"), ("crossfit_neighbourhood", "ll"))}
        out[model] = timed_terms(latents, None, regs, repeats)
        print("aligner cost", model, {k: round(v, 3) for k, v in out[model].items()}, flush=True)
    return out


def trained(models: tuple[str, ...], seeds: int, steps: int, configurations: tuple[str, ...] = ("off", "repel")) -> dict:
    from trainable.config import TrainConfig
    from trainable.trainer import train

    out: dict = {}
    epochs = 3
    for model in models:
        for configuration in configurations:
            runs = []
            for seed in range(seeds):
                with tempfile.TemporaryDirectory() as tmp:
                    config = TrainConfig(model_name=model, seed=seed, batch_size=4, patch_size=128, epochs=epochs,
                                         steps_per_epoch=max(1, steps // epochs), num_workers=0, device="cpu",
                                         learning_rate=1e-3, real_bpp=False, save_path=tmp, save_best=False,
                                         phase2_reg=configuration == "repel", delta=0.1)
                    rows: list[dict] = []
                    train(config, lambda m, d: rows.append(m))
                    last = dict(rows[-1])
                    last.update(training_crops(model, Path(tmp), config))
                runs.append({k: v for k, v in last.items() if "inter_scale" in k or k in ("val_loss", "val_bpp", "val_psnr")})
                print(model, configuration, seed, {k: round(v, 3) for k, v in runs[-1].items()
                                                   if isinstance(v, float) and ("r2" in k or "within" in k or "neigh" in k
                                                                                or "fresh" in k or "crops" in k)}, flush=True)
            keys = sorted(set().union(*runs))
            out[f"{model} {configuration}"] = {"seeds": seeds, "steps": steps, **{
                k: float(np.nanmean([r.get(k, math.nan) for r in runs])) for k in keys}}
    return out


@torch.no_grad()
def training_crops(model_name: str, run_dir: Path, config) -> dict:
    """The cross measure on 64 training crops of the final model (the charge's data, eval mode)."""
    from trainable.checkpoint import load_file
    from trainable.data import ImageFolder, resolve_dataset
    from trainable.models import create_model
    from trainable.models.interface import carried_latents, default_latents
    from trainable.regularizers import pair_rows
    from trainable.regularizers.inter_scale import pair_names

    model = create_model(model_name)
    model.load_state_dict(load_file(run_dir / "model_final.pth.tar"))
    model.eval()
    folder = ImageFolder(resolve_dataset(config.train_dataset, "train"), config.patch_size, train=True)
    crops = torch.stack([folder[(i % len(folder), 1000 + i)] for i in range(64)])
    rows = []
    for x in crops.split(8):
        out = model(x, return_scale_latents=True)
        latents, masks = carried_latents(out, default_latents(model))
        for b in range(len(x)):
            rows.append(pair_rows([t[b:b + 1] for t in latents], masks, (1.0, 1.0)))
    return {f"crops_inter_scale_r2_{name}": scale_predictability([r[k][0] for r in rows], [r[k][1] for r in rows])
            for k, name in enumerate(pair_names(model.num_scales))}


def gradients(models: tuple[str, ...]) -> dict:
    """Where the Phase 2 term's gradient goes: per model and parameter group (the name up to its
    second dot), the norm of the gradient of the RD loss and of the term (delta 1, repel, the
    model's default latents) on one batch of 4 training crops (128 px) at initialisation."""
    from trainable.config import TrainConfig
    from trainable.models.interface import carried_latents
    from trainable.trainer import Datasets, Run

    out = {}
    for model, latents in [(m, "model") for m in models] + [("DHIC_Tiny", "new")]:
        config = TrainConfig(model_name=model, phase2_reg=True, delta=1.0, batch_size=4, patch_size=128, device="cpu",
                             scale_latents=latents)
        torch.manual_seed(0)
        run = Run(config, torch.device("cpu"), steps_per_epoch=1)
        folder = Datasets(config).train
        x = torch.stack([folder[(i, 7 + i)] for i in range(4)])
        out_ = run.model(x, return_scale_latents=True)
        losses = {"rd": run.criterion(out_, x)["loss"], "phase2": run.phase2(*carried_latents(out_, run.scale_latents))[0]}
        norms: dict = {}
        for name, loss in losses.items():
            grads = torch.autograd.grad(loss, list(run.model.parameters()), retain_graph=True, allow_unused=True)
            for (param, _), g in zip(run.model.named_parameters(), grads):
                group = ".".join(param.split(".")[:3] if param.startswith("levels.") else param.split(".")[:1])
                norms.setdefault(group, {}).setdefault(name, 0.0)
                norms[group][name] += float(g.pow(2).sum()) if g is not None else 0.0
        key = f"{model} ({run.scale_latents} latents)"
        out[key] = {g: {k: math.sqrt(v) for k, v in n.items()} for g, n in norms.items()}
        print(key, {g: {k: round(v, 3) for k, v in n.items()} for g, n in out[key].items()}, flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("synthetic", "coverage", "coverage-s2_s3", "coverage-kodak", "cost", "batch", "neighbourhood-charge",
                                           "aligner-cost", "gradients", "trained", "all"), default="all")
    parser.add_argument("--models", nargs="+", default=["HPCM_Tiny", "DHIC_Tiny"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--configurations", nargs="+", choices=("off", "repel"), default=["off", "repel"])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--kodak-images", type=int, choices=range(2, 25), default=24, metavar="2..24",
                        help="coverage-kodak: how many Kodak-sized images")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/predictability.json"))
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.steps < 3:
        print("predictability_table: --seeds must be >= 1 and --steps >= 3", file=sys.stderr)
        raise SystemExit(2)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    stamp = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit or "unknown",
             "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
                        f"{torch.get_num_threads()} threads"}
    if args.part in ("synthetic", "all"):
        results["synthetic"] = {**stamp, "cases": synthetic()}
    if args.part in ("coverage", "all"):
        results["coverage"] = {**stamp, "truths": coverage()}
    if args.part in ("coverage-s2_s3", "all"):
        results["coverage (s2_s3)"] = {**stamp, "truths": coverage(scale=2)}
    if args.part in ("coverage-kodak", "all"):
        results[f"coverage ({args.kodak_images} images)"] = {**stamp, "truths": coverage(args.kodak_images)}
    if args.part in ("cost", "all"):
        results["cost"] = {**stamp, "seconds per validation": cost()}
    if args.part in ("batch", "all"):
        results["batch"] = {**stamp, "sizes": batch_sizes()}
    if args.part in ("neighbourhood-charge", "all"):
        results["neighbourhood charge"] = {**stamp, "cases": neighbourhood_charge()}
    if args.part in ("aligner-cost", "all"):
        results["aligner cost"] = {**stamp, "seconds per step": aligner_cost()}
    if args.part in ("gradients", "all"):
        results["gradients"] = {**stamp, "norms": gradients(tuple(args.models))}
    if args.part in ("trained", "all"):
        key = "trained" if args.configurations == ["off", "repel"] else f"trained ({', '.join(args.configurations)})"
        if args.models != ["HPCM_Tiny", "DHIC_Tiny"]:      # another model set: its own entry, not the documented table
            key += f" ({', '.join(args.models)}, {args.steps} steps)"
        results[key] = {**stamp, "runs": trained(tuple(args.models), args.seeds, args.steps, tuple(args.configurations))}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(args.out)


if __name__ == "__main__":
    main()
