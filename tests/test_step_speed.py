"""A training step that is fast on GPUs, proven on CPU: no host sync in a steady-state step
(Phase 1 and 2 on and off), bf16 autocast close to fp32, torch.compile close to eager with
few graph breaks."""
from __future__ import annotations

from collections import defaultdict

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from tests.fake_device import FAKE, FakeDevice
from trainable.checkpoint import load_file, save_atomic
from trainable.config import TrainConfig
from trainable.regularizers import ALIGNERS
from trainable.trainer import Run, seed_epoch, step_together, train_step

aten = torch.ops.aten
# ops that make the host wait for the device: reading a value, or an output shape that depends on values
SYNC_OPS = {aten._local_scalar_dense, aten.is_nonzero, aten.nonzero, aten.masked_select, aten.equal,
            aten._linalg_check_errors, aten.unique_consecutive, aten._unique2, aten.repeat_interleave}
SYNC_METHODS = ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__")


class SyncCounter(TorchDispatchMode):
    """Counts host syncs on any device: the aten ops above, and Python-level reads of tensor values."""

    def __init__(self, monkeypatch):
        super().__init__()
        self.calls: list[str] = []
        for name in SYNC_METHODS:
            original = getattr(torch.Tensor, name)

            def wrapped(t, *args, _original=original, _name=name, **kwargs):
                self.calls.append(_name)
                return _original(t, *args, **kwargs)
            monkeypatch.setattr(torch.Tensor, name, wrapped)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in SYNC_OPS:
            self.calls.append(str(func))
        return func(*args, **(kwargs or {}))


def small(**overrides) -> TrainConfig:
    return TrainConfig(**{"model_name": "HPCM_Tiny", "batch_size": 2, "patch_size": 64, "num_workers": 0,
                          "learning_rate": 1e-3, "real_bpp": False, "epochs": 10, **overrides})


PHASE2_DEFAULT = TrainConfig().phase2_aligner


@pytest.mark.parametrize("regularized", [False, True])
def test_a_steady_state_step_makes_no_host_sync(regularized, monkeypatch):
    cfg = small(spectral_reg=regularized, truncation_epochs=5, phase2_reg=regularized, phase2_start_epoch=0,
                phase2_aligner=PHASE2_DEFAULT)
    seed_epoch(0, -1)
    runs = [Run(cfg, torch.device("cpu"), steps_per_epoch=4)]
    x = torch.rand(2, 3, 64, 64)
    sums, taus = [defaultdict(float)], [None]
    for step in range(2):                                             # warm-up (lazy state, Adam's first step)
        step_together(runs, x, 0, step, [regularized], sums, taus)
    counter = SyncCounter(monkeypatch)
    with counter:
        for step in range(2, 4):
            step_together(runs, x, 0, step, [regularized], sums, taus)
    assert counter.calls == []
    assert runs[0].global_step == 4 and int(sums[0]["skipped"]) == 0


BIG = {"batch_size": 1, "patch_size": 192}      # crops MS-SSIM can score (>= 161 px)
STEP_KINDS = {"off": BIG, "ms-ssim": {**BIG, "metric": "ms-ssim", "lmbda": 8.0},
              "phase1": {"spectral_reg": True, "truncation_epochs": 5},
              **{f"phase2-{a}": {"phase2_reg": True, "phase2_start_epoch": 0, "phase2_aligner": a} for a in ALIGNERS}}


@pytest.mark.parametrize("kind", STEP_KINDS)
def test_a_steady_state_step_on_a_device_copies_nothing_from_the_host(kind, monkeypatch, tmp_path):
    # as a GPU counts: besides reads (syncs), every host -> device copy (a window, a Python number
    # made a tensor) blocks on pageable memory; the batch itself arrives on the device
    cfg = small(**STEP_KINDS[kind])
    phase2 = cfg.phase2_reg
    with FakeDevice() as fake:
        seed_epoch(0, -1)
        runs = [Run(cfg, FAKE, steps_per_epoch=4)]
        x = torch.rand(cfg.batch_size, 3, cfg.patch_size, cfg.patch_size).to(FAKE)
        sums, taus = [defaultdict(float)], [None]
        for step in range(2):                                         # warm-up (lazy state, Adam's first step)
            step_together(runs, x, 0, step, [phase2], sums, taus)
        before = len(fake.host_to_device)
        with SyncCounter(monkeypatch) as counter:
            for step in range(2, 4):
                step_together(runs, x, 0, step, [phase2], sums, taus)
        assert counter.calls == [] and fake.host_to_device[before:] == []
        assert int(sums[0]["skipped"]) == 0
        if phase2:                    # the sampled charge, its fresh estimate and a checkpoint round trip stay on the device too
            names = runs[0].phase2.pair_names
            assert {f"inter_scale_fresh_{n}" for n in names} <= set(runs[0].phase2.sampled())
        save_atomic(runs[0].state(), tmp_path / "state.pth.tar")
        again = Run(cfg, FAKE, steps_per_epoch=4)
        again.load_state(load_file(tmp_path / "state.pth.tar"), "state")
        step_together(runs + [again], x, 0, 4, [phase2, phase2], [defaultdict(float), defaultdict(float)], [None, None])
    assert torch.equal(again.model.g_a.branch[-1].weight.elem, runs[0].model.g_a.branch[-1].weight.elem)


def test_the_sync_counter_sees_the_syncs_a_step_used_to_make(monkeypatch):
    loss = torch.tensor(1.0)
    with SyncCounter(monkeypatch) as counter:
        if not torch.isfinite(loss):     # the old per-step check
            pass
        torch.linalg.solve(torch.eye(2), torch.ones(2))
        loss.item()
    assert len(counter.calls) >= 3, counter.calls


def _steps(cfg: TrainConfig, n: int) -> list[float]:
    seed_epoch(0, -1)
    run = Run(cfg, torch.device("cpu"), steps_per_epoch=n)
    g = torch.Generator().manual_seed(1)
    batch = torch.rand(2, 3, 64, 64, generator=g)
    losses = []
    for step in range(n):
        seed_epoch(0, 0, step)
        rd, _, _ = train_step(run, batch, phase2=False)
        losses.append(float(rd["loss"].detach()))
    return losses


def test_bf16_autocast_trains_like_fp32_on_hpcm_tiny():
    fp32, bf16 = _steps(small(), 4), _steps(small(amp="bf16"), 4)
    # bf16 convolutions (8-bit mantissa) move the loss by a few 1e-3 relative; rates, noise and
    # rounding are fp32, so the steps track each other (rel. 2e-2 allows for 4 steps of drift)
    assert bf16 == pytest.approx(fp32, rel=2e-2)
    assert bf16 != fp32                                   # autocast really ran in bf16


def test_hpcm_noise_rounding_and_likelihoods_stay_fp32_under_autocast():
    from trainable.models import create_model

    torch.manual_seed(0)
    model = create_model("HPCM_Tiny").train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.rand(1, 3, 64, 64), return_scale_latents=True)
    assert out["x_hat"].dtype == torch.bfloat16                            # the transforms ran in bf16
    assert {l.dtype for l in out["likelihoods"].values()} == {torch.float32}
    assert {t.dtype for t in out["scale_latents"]} == {torch.float32}      # what Phase 2 sees


@pytest.mark.slow
def test_hpcm_forward_has_at_most_two_graph_breaks_under_torch_compile():
    from trainable.models import create_model

    torch.manual_seed(0)
    model = create_model("HPCM_Tiny").train()
    explained = torch._dynamo.explain(model)(torch.rand(1, 3, 64, 64), return_scale_latents=True)
    # was 14 graphs / 13 breaks (a nonzero per traced schedule() call); now the one cached,
    # compile-opaque schedule() call splits forward and _progressive: 3 graphs, 2 breaks
    assert explained.graph_break_count <= 2, [str(r.reason)[:200] for r in explained.break_reasons]
    assert all("schedule" in str(r.reason) for r in explained.break_reasons)


@pytest.mark.slow
def test_a_compiled_hpcm_tiny_trains_two_steps_like_eager(monkeypatch):
    # Dynamo's capture and AOTAutograd's forward/backward graphs, run by the aot_eager backend:
    # ~20 CPU-s here; Inductor's C++ codegen of the same graphs did not finish in 25 min on the
    # loaded 2-core machine, so its numerics are checked by benchmarks.gpu_check on CUDA.
    compile_ = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **kw: compile_(model, backend="aot_eager", **kw))
    compiled = _steps(small(compile=True), 2)
    eager = _steps(small(), 2)
    assert compiled == pytest.approx(eager, rel=1e-5)


def test_speed_and_checkpoint_options_reach_every_trial_and_bad_values_are_one_line():
    from search.config import SearchConfig
    from search.plan import make_plan
    from search.run import build_parser, config_from_args
    from trainable.errors import InputError

    args = build_parser().parse_args(["--space", "baseline", "--preset", "cpu-smoke", "--amp", "bf16", "--compile",
                                      "--num-workers", "3", "--checkpoint-every", "2", "--scratch-dir", "/tmp"])
    plan = make_plan(config_from_args(args), verify_data=False)
    params = plan.trial_params(plan.off, 0)
    assert (params["amp"], params["compile"], params["num_workers"], params["checkpoint_every"],
            params["scratch_dir"]) == ("bf16", True, 3, 2, "/tmp")
    default_plan = make_plan(SearchConfig.create("baseline", "cpu-smoke"), verify_data=False)
    default = default_plan.trial_params(default_plan.off, 0)
    assert default["num_workers"] is None and default["amp"] == "fp32"      # None: the trial's CPUs minus one
    for bad, message in (({"num_workers": -1}, "num workers must be >= 0"),
                         ({"checkpoint_every": 0}, "checkpoint every must be >= 1")):
        with pytest.raises(InputError, match=message):
            make_plan(SearchConfig.create("baseline", "cpu-smoke", **bad), verify_data=False)


def test_ms_ssim_with_its_constants_cached_on_the_device_is_the_library_default():
    from pytorch_msssim import ms_ssim

    from trainable.loss import ms_ssim_on_device

    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 176, 176, generator=g)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    assert torch.equal(ms_ssim_on_device(x, y), ms_ssim(x, y, data_range=1.0))
