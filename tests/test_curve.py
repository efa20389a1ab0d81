"""One configuration at every λ: lockstep models, per-λ metrics, rd_score, one checkpoint, resume."""
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from trainable.checkpoint import load_file
from trainable.config import TrainConfig
from trainable.curve import CURVE_LAST, CurveConfig, final_model_name, lambda_key, train_curve
from trainable.errors import CheckpointError, InputError
from trainable.models import create_model
from trainable.trainer import train

LAMBDAS = (0.0067, 0.025)


@pytest.fixture
def base(tmp_path, monkeypatch):
    monkeypatch.setenv("HPCM_TUNE_CACHE", str(tmp_path / "cache"))
    return TrainConfig(model_name="HPCM_Tiny", epochs=2, batch_size=2, patch_size=128, steps_per_epoch=2,
                       num_workers=0, learning_rate=1e-3, save_path=str(tmp_path / "curve"), real_bpp=False,
                       phase2_reg=True, spectral_reg=True, truncation_epochs=1)


def collect(config, resume=None, stop_at=None):
    rows = []

    def report(metrics, checkpoint_dir):
        rows.append((metrics, checkpoint_dir))
        if metrics["epoch"] == stop_at:
            raise KeyboardInterrupt
    train_curve(config, report, resume=resume)
    return rows


def test_every_lambda_model_is_the_run_train_would_give(base, tmp_path):
    # the K models share one batch stream and interleave step by step, yet each is bit-identical
    # to training its λ alone (per-step seeds; crops seeded per item, not from the global RNG)
    rows = collect(CurveConfig(base, LAMBDAS))
    assert [m["epoch"] for m, _ in rows] == [1, 2]
    last, folder = rows[-1]
    for lmbda in LAMBDAS:
        alone = []
        save = tmp_path / f"alone{lmbda}"
        train(replace(base, lmbda=lmbda, save_path=str(save)), lambda m, d: alone.append(m))
        for key in ("val_loss", "train_loss", "inter_scale_reg", "val_inter_scale_r2_s1_s2"):
            assert last[f"{lambda_key(lmbda)}/{key}"] == alone[-1][key], (lmbda, key)
        model = create_model("HPCM_Tiny")
        weights = load_file(Path(folder) / final_model_name(lmbda))
        model.load_state_dict(weights)                                            # inference weights per λ
        assert all(torch.equal(weights[k], v) for k, v in load_file(save / "model_final.pth.tar").items())
    losses = [last[f"{lambda_key(l)}/val_loss"] for l in LAMBDAS]
    assert last["rd_score"] == pytest.approx(sum(math.log(v) for v in losses) / len(losses))
    assert last["phase"] == "baseline" and rows[0][0]["phase"] == "phase1_intra"
    assert len(load_file(Path(folder) / CURVE_LAST)["runs"]) == len(LAMBDAS)     # one checkpoint holds all


def test_resume_continues_every_lambda_model_exactly(base, tmp_path):
    full = collect(CurveConfig(base, LAMBDAS))
    part = CurveConfig(replace(base, save_path=str(tmp_path / "part")), LAMBDAS)
    with pytest.raises(KeyboardInterrupt):
        collect(part, stop_at=1)
    resumed = collect(part, resume=Path(part.base.save_path) / CURVE_LAST)
    assert [m["epoch"] for m, _ in resumed] == [2]
    assert resumed[0][0]["rd_score"] == full[-1][0]["rd_score"]                 # bit-identical
    ours, theirs = (load_file(Path(d) / CURVE_LAST)["runs"] for d in (resumed[0][1], full[-1][1]))
    assert all(torch.equal(a["model"][k], b["model"][k]) for a, b in zip(ours, theirs) for k in a["model"])
    with pytest.raises(CheckpointError, match="holds λ"):
        collect(CurveConfig(part.base, (0.0067, 0.013)), resume=Path(part.base.save_path) / CURVE_LAST)


def test_a_curve_needs_distinct_lambdas(base):
    with pytest.raises(InputError, match="distinct"):
        collect(CurveConfig(base, (0.013, 0.013)))
    with pytest.raises(InputError, match="lambda must be > 0"):
        collect(CurveConfig(base, (0.013, -1.0)))


def test_checkpoint_every_n_epochs_and_after_the_last(base, tmp_path):
    rows = collect(CurveConfig(replace(base, epochs=3, checkpoint_every=2, phase2_reg=False, spectral_reg=False,
                                       patch_size=64, steps_per_epoch=1), LAMBDAS[:1]))
    assert [d is not None for _, d in rows] == [False, True, True]          # epochs 2 and 3 (the last)
    assert rows[0][0][f"{lambda_key(LAMBDAS[0])}/device"] == "cpu"          # every run logs its device
    assert load_file(Path(rows[-1][1]) / CURVE_LAST)["runs"][0]["epoch"] == 3
