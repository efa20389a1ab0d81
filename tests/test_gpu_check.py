"""benchmarks.gpu_check can fail: its comparisons, run on the CPU, catch a wrong backward and
pass two honest backends; without CUDA it runs what the CPU can and skips the rest by name."""
import json

import pytest
import torch

from benchmarks import gpu_check
from benchmarks.parity import first_backward, gradient_parity, smooth_batch
from trainable.config import TrainConfig

CFG = TrainConfig(model_name="HPCM_Tiny", clip_max_norm=0.0, real_bpp=False)


@pytest.fixture(scope="module")
def reference():
    x = smooth_batch(2, 64)
    return x, first_backward(CFG, "cpu", x)


def test_a_backward_that_is_wrong_in_one_context_layer_fails(reference):
    x, ref = reference

    def wrong(model):                      # 1.5x the gradient of the context model's first conv
        model.context_net[0].weight.register_hook(lambda g: 1.5 * g)
    result = gradient_parity(ref, first_backward(CFG, "cpu", x, prepare=wrong))
    assert result["status"] == "fail" and result["worst_tensor"] == "context_net.0.weight"
    assert result["worst_relative_l2"] == pytest.approx(0.5, rel=1e-6) and result["tensors_over"] == 1


def test_two_honest_backends_pass(reference):
    x, ref = reference
    with torch.backends.mkldnn.flags(enabled=False):        # native convolutions instead of oneDNN's
        native = first_backward(CFG, "cpu", x)
    result = gradient_parity(ref, native)
    assert result["status"] == "pass" and 0 < result["worst_relative_l2"] < 1e-3   # different, within tolerance
    channels_last = first_backward(CFG, "cpu", x, prepare=lambda m: m.to(memory_format=torch.channels_last))
    assert gradient_parity(ref, channels_last)["status"] == "pass"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without usable CUDA")
def test_without_cuda_it_runs_the_cpu_checks_and_skips_the_rest(tmp_path):
    out = tmp_path / "gpu_check.json"
    assert gpu_check.main(["--out", str(out), "--only", "lockstep_vs_alone", "gradient_parity", "first_sync",
                           "planner"]) == 0
    results = json.loads(out.read_text())
    assert results["lockstep_vs_alone"]["status"] == "pass"
    assert all(results[n]["status"] == "skipped: no CUDA" for n in ("gradient_parity", "first_sync", "planner"))
    assert all(results[n]["threshold"] for n in ("lockstep_vs_alone", "gradient_parity", "first_sync", "planner"))
    from search.cost import checked_step_seconds
    from trainable.errors import InputError

    assert checked_step_seconds(out, "HPCM_Base", 16, 256, required=False) is None     # the default file: ignored
    with pytest.raises(InputError, match="holds no step time"):                         # named: one line
        checked_step_seconds(out, "HPCM_Base", 16, 256, required=True)


def test_a_failed_check_makes_the_exit_status_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gpu_check, "check_lockstep", lambda: {"status": "fail", "worst_loss_relative_diff": 0.2})
    assert gpu_check.main(["--out", str(tmp_path / "r.json"), "--only", "lockstep_vs_alone", "planner"]) == 1
    assert "lockstep_vs_alone fail" in capsys.readouterr().out
