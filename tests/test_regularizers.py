"""Spectral regularisers: DCT, Phase 1 truncation and tau schedule, Haar DWT, Phase 2 term."""
import math

import pytest
import torch

from trainable.regularizers import (
    InterScaleRegularizer,
    TauSchedule,
    cosine_distance,
    dct2,
    dct_matrix,
    haar_dwt,
    idct2,
    l1_distance,
    l2_distance,
    radial_mask,
    rms_normalize,
    truncate,
)

M = 4  # latent channels in the Phase 2 tests


def scale_latents(seed: int = 0, batch: int = 2, h: int = 4) -> list[torch.Tensor]:
    """HPCM-shaped latents s1 [B,M,h,h], s2 [B,M,2h,2h], s3 [B,M,4h,4h]."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, M, h * k, h * k, generator=g) for k in (1, 2, 4)]


# --- DCT ---------------------------------------------------------------------------

def test_dct_round_trip_and_energy():
    x = torch.randn(2, 3, 8, 12, dtype=torch.float64)
    X = dct2(x)
    torch.testing.assert_close(idct2(X), x)
    torch.testing.assert_close(X.pow(2).sum(), x.pow(2).sum())
    c = dct_matrix(12, dtype=torch.float64)
    torch.testing.assert_close(c @ c.T, torch.eye(12, dtype=torch.float64))


def test_dct_matches_scipy():
    fft = pytest.importorskip("scipy.fft")
    x = torch.randn(2, 5, 7, dtype=torch.float64)
    expected = torch.from_numpy(fft.dctn(x.numpy(), axes=(-2, -1), norm="ortho"))
    torch.testing.assert_close(dct2(x), expected)


def test_dct_basis_is_cached_per_size_device_dtype():
    assert dct_matrix(8, torch.device("cpu"), torch.float32) is dct_matrix(8, torch.device("cpu"), torch.float32)
    assert dct_matrix(8, torch.device("cpu"), torch.float64).dtype == torch.float64


# --- Phase 1: radial mask, truncation, tau schedule ----------------------------------

def test_radial_mask_values():
    h, w, tau = 8, 16, 0.5
    m = radial_mask(h, w, tau)
    assert m.shape == (h, w)
    assert m[0, 0] == 1
    r = torch.sqrt((torch.arange(h).view(-1, 1) / h) ** 2 + (torch.arange(w).view(1, -1) / w) ** 2)
    torch.testing.assert_close(m, ((tau - r) / tau).clamp(min=0))
    assert (m[r >= tau] == 0).all() and (m[r < tau] > 0).all()
    assert (m.diff(dim=0) <= 0).all() and (m.diff(dim=1) <= 0).all()  # monotone in u and v
    with pytest.raises(ValueError, match="tau"):
        radial_mask(4, 4, 0.0)


def test_truncate_keeps_low_and_drops_high_frequencies():
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    torch.testing.assert_close(truncate(x, 1e6), x, rtol=1e-5, atol=1e-5)  # mask ~1 everywhere
    # tau below the first non-DC radius (1/16): only the DC term, i.e. each channel's mean, is left.
    torch.testing.assert_close(truncate(x, 0.05), x.mean((-2, -1), keepdim=True).expand_as(x))
    # Each DCT coefficient is scaled by its mask value.
    X = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    X[..., 1, 2] = 1.0
    X[..., 12, 13] = 1.0
    out = dct2(truncate(idct2(X), 0.5))
    mask = radial_mask(16, 16, 0.5, dtype=torch.float64)
    assert out[..., 1, 2].item() == pytest.approx(mask[1, 2].item()) and 0 < mask[1, 2] < 1
    assert out[..., 12, 13].item() == pytest.approx(0.0, abs=1e-12)


def test_tau_schedule_linear_ramp_then_inactive():
    s = TauSchedule()  # 0.05 -> 1.0 over 100 epochs
    assert s.tau(0) == pytest.approx(0.05) and s.tau(99) == pytest.approx(1.0)
    steps = [s.tau(e + 1) - s.tau(e) for e in range(99)]
    assert steps == pytest.approx([0.95 / 99] * 99)
    assert s.active(99) and not s.active(100)
    assert s.tau(100) is None and s.tau(1000) is None
    assert TauSchedule(0.2, 0.8, 1).tau(0) == pytest.approx(0.2)
    off = TauSchedule(truncation_epochs=0)
    assert not off.active(0) and off.tau(0) is None


@pytest.mark.parametrize(
    "kwargs",
    [dict(tau_init=0.0), dict(tau_init=1.5, tau_final=1.5), dict(tau_init=0.5, tau_final=0.4),
     dict(tau_final=1.5), dict(truncation_epochs=-1)],
)
def test_tau_schedule_validation(kwargs):
    with pytest.raises(ValueError):
        TauSchedule(**kwargs)


def test_tau_schedule_rejects_negative_epoch():
    with pytest.raises(ValueError, match="epoch"):
        TauSchedule().tau(-1)


# --- Haar DWT ------------------------------------------------------------------------

def test_haar_known_block_and_constant_image():
    ll, lh, hl, hh = haar_dwt(torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2))
    assert [t.item() for t in (ll, lh, hl, hh)] == [5.0, -2.0, -1.0, 0.0]
    bands = haar_dwt(torch.full((2, 3, 8, 6), 3.0))
    assert all(t.shape == (2, 3, 4, 3) for t in bands)
    assert (bands[0] == 6.0).all() and all((t == 0).all() for t in bands[1:])


def test_haar_preserves_energy():
    x = torch.randn(2, 3, 8, 10, dtype=torch.float64)
    energy = sum(t.pow(2).sum() for t in haar_dwt(x))
    torch.testing.assert_close(energy, x.pow(2).sum())
    with pytest.raises(ValueError, match="even"):
        haar_dwt(torch.zeros(1, 1, 3, 4))


# --- Phase 2: distances -----------------------------------------------------------

def test_distances_on_controlled_inputs():
    x = rms_normalize(torch.randn(2, M, 4, 4))
    torch.testing.assert_close(x.pow(2).mean((1, 2, 3)), torch.ones(2), rtol=1e-5, atol=1e-5)
    assert l2_distance(x, x) == 0 and l1_distance(x, x) == 0
    assert l2_distance(x, -x).item() == pytest.approx(4.0, rel=1e-5)
    assert l1_distance(x, -x).item() == pytest.approx(2 * x.abs().mean().item())
    assert cosine_distance(x, 3 * x).item() == pytest.approx(0.0, abs=1e-6)
    assert cosine_distance(x, -x).item() == pytest.approx(2.0)
    e0, e1 = torch.zeros(1, 2, 1, 1), torch.zeros(1, 2, 1, 1)
    e0[:, 0], e1[:, 1] = 1.0, 1.0
    assert cosine_distance(e0, e1).item() == pytest.approx(1.0)
    assert torch.isfinite(rms_normalize(torch.zeros(2, 3))).all()


# --- Phase 2: regulariser ---------------------------------------------------------

def test_repel_and_attract_differ_only_in_sign():
    repel = InterScaleRegularizer(M, delta=0.3, sign="repel")
    attract = InterScaleRegularizer(M, delta=0.3, sign="attract")
    attract.load_state_dict(repel.state_dict())
    latents = scale_latents()
    (t_r, pairs_r), (t_a, pairs_a) = repel(latents), attract(latents)
    assert t_r.dim() == 0 and t_r < 0 < t_a
    torch.testing.assert_close(t_r, -t_a)
    assert list(pairs_r) == ["s1_s2", "s2_s3"]
    for name in pairs_r:  # logged distances are unsigned and unweighted
        assert pairs_r[name] > 0 and not pairs_r[name].requires_grad
        torch.testing.assert_close(pairs_r[name], pairs_a[name])
    torch.testing.assert_close(t_a, 0.3 * (pairs_a["s1_s2"] + pairs_a["s2_s3"]))


@pytest.mark.parametrize("alignment, in_channels", [("subbands", 4 * M), ("ll", M)])
def test_aligner_input_channels(alignment, in_channels):
    reg = InterScaleRegularizer(M, alignment=alignment)
    shapes = [tuple(p.shape) for p in reg.parameters()]
    assert shapes == [(M, in_channels, 1, 1)] * 2  # one aligner per adjacent pair
    total, _ = reg(scale_latents())
    assert torch.isfinite(total)


def test_new_scale_latents_ignore_values_outside_the_masks():
    latents = scale_latents()
    g = torch.Generator().manual_seed(1)
    masks = [(torch.rand(1, M, *y.shape[-2:], generator=g) < 0.5).float() for y in latents]
    changed = [y + 10 * torch.randn(y.shape, generator=g) * (1 - m) for y, m in zip(latents, masks)]
    reg = InterScaleRegularizer(M, scale_latents="new")
    torch.testing.assert_close(reg(latents, masks)[0], reg(changed, masks)[0])
    full = InterScaleRegularizer(M, scale_latents="full")
    full.load_state_dict(reg.state_dict())
    assert not torch.allclose(full(latents)[0], reg(latents, masks)[0])
    with pytest.raises(ValueError, match="new"):
        reg(latents)


def test_gradients_reach_latents_and_aligners():
    latents = [y.requires_grad_() for y in scale_latents()]
    reg = InterScaleRegularizer(M)
    reg(latents)[0].backward()
    for t in [*latents, *reg.parameters()]:
        assert t.grad is not None and t.grad.abs().sum() > 0


@pytest.fixture
def one_thread():
    """Tiny tensors: intra-op threads only add contention on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("distance, bound", [("l2", 4.0), ("l1", 2.0), ("cosine", 2.0)])
def test_repel_is_bounded_under_optimisation(distance, bound, one_thread):
    torch.manual_seed(0)
    delta = 0.5
    latents = [torch.nn.Parameter(y) for y in scale_latents(batch=1)]
    reg = InterScaleRegularizer(M, delta=delta, distance=distance, sign="repel")
    opt = torch.optim.Adam([*latents, *reg.parameters()], lr=1e-2)
    floor = -delta * bound * 2  # two pairs
    totals = []
    for _ in range(500):
        total, _ = reg(latents)
        opt.zero_grad()
        total.backward()
        opt.step()
        totals.append(total.item())
    assert all(math.isfinite(t) and t >= floor - 1e-4 for t in totals)
    assert totals[-1] < totals[0]  # it did optimise
    for aligner in reg.aligners:
        torch.testing.assert_close(aligner.unit_weight().flatten(1).norm(dim=1), torch.ones(M))


def test_zero_delta_is_off():
    reg = InterScaleRegularizer(M, delta=0.0)
    total, pairs = reg([y.requires_grad_() for y in scale_latents()])
    assert total.item() == 0 and all(d.item() == 0 for d in pairs.values())


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(alignment="bands"), "'subbands', 'll'"), (dict(distance="l3"), "'l2', 'l1', 'cosine'"),
     (dict(sign="push"), "'repel', 'attract'"), (dict(scale_latents="all"), "'full', 'new'"),
     (dict(delta=-0.1), "delta")],
)
def test_invalid_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        InterScaleRegularizer(M, **kwargs)


def test_rejects_latents_that_do_not_double_in_size():
    s1, s2, _ = scale_latents()
    with pytest.raises(ValueError, match="double"):
        InterScaleRegularizer(M)([s1, s2, s2])
