"""A trial's work runs on a device that is not the CPU, proven without a GPU (tests/fake_device.py):
lockstep training with Phase 1 then Phase 2 (every aligner), ``sampled()`` (the charge and its fresh estimate), validation with the
predictability measure, real bitstreams, checkpoint and resume. A tensor made on the CPU that meets
the trial's device raises, naming its line, as CUDA would at the end of the first epoch."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from tests.fake_device import FAKE, DeviceLeak, FakeDevice, OnFake
from trainable.config import TrainConfig
from trainable.curve import CURVE_LAST, CurveConfig, train_curve
from trainable.regularizers import scale_predictability


def _folder(path, sizes, seed):
    path.mkdir()
    rng = np.random.default_rng(seed)
    for i, (h, w) in enumerate(sizes):
        smooth = np.cumsum(np.cumsum(rng.normal(size=(h, w, 3)), 0), 1)
        smooth = (smooth - smooth.min()) / (np.ptp(smooth) + 1e-9)
        Image.fromarray((255 * smooth).astype(np.uint8)).save(path / f"{i}.png")
    return str(path)


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("HPCM_TUNE_CACHE", str(tmp_path / "cache"))
    return (_folder(tmp_path / "train", [(96, 96)] * 3, 0), _folder(tmp_path / "val", [(64, 96), (96, 64)], 1))


def _curve(data, tmp_path, model, aligner, epochs) -> CurveConfig:
    base = TrainConfig(model_name=model, train_dataset=data[0], test_dataset=data[1], epochs=epochs, batch_size=2,
                       patch_size=64, steps_per_epoch=1, num_workers=0, learning_rate=1e-3, spectral_reg=True,
                       truncation_epochs=1, phase2_reg=True, phase2_aligner=aligner, real_bpp=True,
                       save_path=str(tmp_path / "trial"))
    return CurveConfig(base, (0.0067, 0.025), devices=(str(FAKE),))


TIMINGS = ("epoch_seconds", "images_per_s", "device")


def _numbers(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.endswith(TIMINGS) and isinstance(v, (int, float))}


@pytest.mark.parametrize("model,aligner", [("HPCM_Tiny", "adversarial"), ("DHIC_Tiny", "crossfit")])
def test_a_trial_runs_on_a_device_that_is_not_the_cpu(data, tmp_path, model, aligner):
    # every aligner's steps, sampled() and state round trip: tests/test_step_speed.py (same fake device)
    rows, reference = [], []
    with FakeDevice():
        # epoch 1 Phase 1, epoch 2 Phase 2 (fresh fit, validation measure, real bpp, checkpoint), then resume
        train_curve(_curve(data, tmp_path, model, aligner, 2), lambda m, d: rows.append(m))
        train_curve(_curve(data, tmp_path, model, aligner, 3), lambda m, d: rows.append(m),
                    resume=tmp_path / "trial" / CURVE_LAST)
    assert [m["epoch"] for m in rows] == [1, 2, 3]
    assert rows[0]["phase"] == "phase1_intra" and rows[1]["phase2_active"] and rows[2]["global_step"] == 3
    assert {v for k, v in rows[-1].items() if k.endswith("/device")} == {str(FAKE)}
    assert all(rows[-1][f"lambda={lmbda}/real_bpp"] > 0 for lmbda in ("0.0067", "0.025"))
    cpu = replace(_curve(data, tmp_path / "cpu", model, aligner, 3), devices=("cpu",))
    (tmp_path / "cpu").mkdir()
    train_curve(cpu, lambda m, d: reference.append(m))
    # the same numbers as on the CPU, every metric of every epoch: no step, fit or measure skipped
    # (epoch 2 ended the first run: it also has real_bpp)
    assert set(rows[-1]) == set(reference[-1]) and all(set(h) <= set(f) for f, h in zip(rows, reference))
    for fake, host in zip(rows, reference):
        assert {k: _numbers(fake)[k] for k in _numbers(host)} == pytest.approx(_numbers(host), rel=1e-6, nan_ok=True)


def test_the_fake_device_catches_a_cpu_tensor_and_names_its_line():
    # what ridge.py did before its tensors carried device=: a CPU vector times a device scalar
    with FakeDevice() as fake:
        x = torch.randn(8, 3, device=FAKE)
        assert isinstance(x, OnFake) and x.device == FAKE
        with pytest.raises(DeviceLeak, match=r"test_fake_device_trial.py:\d+ .*torch.tensor\(\[1.0, 2.0\]\) \* x"):
            torch.tensor([1.0, 2.0]) * x.pow(2).sum()
        torch.tensor(2.0) * x                            # a 0-dim CPU tensor is a scalar, as on CUDA
        torch.tensor([1.0, 2.0], device=x.device)        # made from Python data: a host → device copy
    assert len(fake.host_to_device) == 1 and "test_fake_device_trial.py" in fake.host_to_device[0]


@pytest.mark.parametrize("kind", ["cross", "within", "neighbourhood"])
def test_the_validation_measure_stays_on_the_latents_device(kind):
    g = torch.Generator().manual_seed(0)
    coarse = [torch.randn(4, 6, 6, generator=g) for _ in range(3)]
    fine = [torch.randn(4, 12, 12, generator=g) for _ in range(3)]
    on_cpu = scale_predictability(coarse, fine, kind)
    with FakeDevice():
        on_fake = scale_predictability([c.to(FAKE) for c in coarse], [f.to(FAKE) for f in fine], kind)
    assert on_fake == pytest.approx(on_cpu, abs=1e-12)
