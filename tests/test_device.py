"""A GPU trial never trains on the CPU: CUDA problems are one line naming the cause, and fail the search."""
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from trainable import device as device_module
from trainable.device import cuda_problem, describe, resolve_device
from trainable.errors import InputError, TrainingError

ROOT = Path(__file__).resolve().parents[1]
needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without usable CUDA")


@needs_no_cuda
def test_the_cuda_problem_names_the_torch_build_and_the_driver_error():
    problem = cuda_problem()
    assert "\n" not in problem
    if torch.version.cuda is None:
        assert "CPU-only build" in problem
    else:
        assert f"built for CUDA {torch.version.cuda}" in problem and "torch.cuda.is_available()=False" in problem
        assert "NVIDIA driver" in problem
    with pytest.raises(TrainingError, match="device cuda:0 requested, but torch"):
        resolve_device("cuda:0")
    assert resolve_device("auto") == torch.device("cpu")
    assert describe(torch.device("cpu")).startswith("cpu (")


@needs_no_cuda
def test_default_preset_refuses_a_gpu_that_torch_cannot_use(monkeypatch):
    from search.presets import default_preset

    if not device_module.gpu_present():
        assert default_preset() == "cpu-smoke"
    monkeypatch.setattr(device_module, "gpu_present", lambda: True)
    with pytest.raises(InputError, match="has an NVIDIA GPU, but torch .*pass --preset cpu-smoke"):
        default_preset()


DRIVER = """
import sys, ray
ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)   # a fake GPU
from search.run import main
from trainable.cli import run_cli
sys.exit(run_cli(main, sys.argv[1:]))
"""


@pytest.mark.slow
@needs_no_cuda
def test_a_trial_given_a_gpu_it_cannot_use_fails_with_the_cause_and_the_search_exits_1(tmp_path):
    args = ["--space", "baseline", "--name", "gpu", "--preset", "cpu-smoke", "--lambdas", "0.0035", "0.0067", "0.013",
            "0.025",
            "--steps-per-epoch", "1", "--batch-size", "1", "--patch-size", "64", "--max-epochs", "1",
            "--gpus-per-trial", "1", "--cpus-per-trial", "1", "--max-failures", "0", "--init-weights", "none",
            "--storage-path", str(tmp_path)]
    env = {**os.environ, "HPCM_TUNE_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", DRIVER, *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=600, env=env)
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1].startswith("1 of 1 trials errored"), r.stdout[-2000:] + r.stderr[-2000:]
    error = pd.read_csv(tmp_path / "gpu" / "results.csv")["error"][0]
    assert "Ray gave this trial GPU(s) [0], but torch" in error
    assert ("cannot use CUDA" in error) or ("CPU-only" in error)
    assert not list((tmp_path / "gpu").glob("trial_*/checkpoint_*"))           # nothing trained on the CPU


def test_ray_gpu_ids_become_torch_devices_through_cuda_visible_devices(monkeypatch):
    from trainable.device import trial_devices

    # Ray sets CUDA_VISIBLE_DEVICES to the trial's GPUs in its own order: torch counts that list from 0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,3")
    assert trial_devices(["3", "5"]) == ("cuda:1", "cuda:0") and trial_devices([3]) == ("cuda:1",)
    assert trial_devices([]) == ()
    with pytest.raises(TrainingError, match="CUDA_VISIBLE_DEVICES=5,3 does not list 4"):
        trial_devices(["4"])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")                   # not set (Ray told not to): every GPU, as numbered
    assert trial_devices(["3", "5"]) == ("cuda:3", "cuda:5")
    assert trial_devices(["2"], visible="GPU-aa,2") == ("cuda:1",)


def test_deterministic_runs_from_the_command_line_to_the_kernels_and_back(tmp_path, monkeypatch):
    from search.plan import make_plan
    from search.run import build_parser, config_from_args
    from trainable.config import TrainConfig
    from trainable.curve import CurveConfig, train_curve

    args = build_parser().parse_args(["--space", "baseline", "--preset", "cpu-smoke", "--deterministic"])
    plan = make_plan(config_from_args(args), verify_data=False)
    assert plan.trial_params(plan.off, 0)["deterministic"] is True
    assert plan.base.deterministic and not TrainConfig().deterministic
    monkeypatch.setenv("HPCM_TUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    seen = []
    base = TrainConfig(model_name="HPCM_Tiny", epochs=1, batch_size=1, patch_size=64, steps_per_epoch=1,
                       num_workers=0, real_bpp=False, save_path=str(tmp_path / "run"), deterministic=True)
    train_curve(CurveConfig(base, (0.0067,)), lambda m, d: seen.append(
        (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
         os.environ.get("CUBLAS_WORKSPACE_CONFIG"))))
    assert seen == [(True, False, ":4096:8")]                    # set at run time, while the run trains
    assert not torch.are_deterministic_algorithms_enabled() and "CUBLAS_WORKSPACE_CONFIG" not in os.environ


def test_validation_does_not_autotune_cudnn_for_every_image_size(monkeypatch):
    from trainable.loss import RateDistortionLoss
    from trainable.models import create_model
    from trainable.trainer import evaluate

    model = create_model("HPCM_Tiny")
    flags = []
    model.register_forward_pre_hook(lambda module, args: flags.append(torch.backends.cudnn.benchmark))
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)           # as training on CUDA sets it
    evaluate(model, [torch.zeros(1, 3, 64, 64, dtype=torch.uint8)], RateDistortionLoss(0.01), torch.device("cpu"))
    assert flags == [False] and torch.backends.cudnn.benchmark is True
