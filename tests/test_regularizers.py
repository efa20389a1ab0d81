"""Spectral regularisers: DCT, Phase 1 truncation and tau schedule, Haar DWT, Phase 2 term."""
import math

import pytest
import torch

from trainable.regularizers.ridge import as_rows, ridge_fit, ridge_predict
from trainable.regularizers import (
    FrequencyTruncation,
    dwt_features,
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

def test_seed_mask_values():
    h, w, tau = 8, 16, 0.5
    m = radial_mask(h, w, tau, kind="seed")
    assert m.shape == (h, w)
    assert m[0, 0] == 1
    r = torch.sqrt((torch.arange(h).view(-1, 1) / h) ** 2 + (torch.arange(w).view(1, -1) / w) ** 2)
    torch.testing.assert_close(m, ((tau - r) / tau).clamp(min=0))
    assert (m[r >= tau] == 0).all() and (m[r < tau] > 0).all()
    assert (m.diff(dim=0) <= 0).all() and (m.diff(dim=1) <= 0).all()  # monotone in u and v
    with pytest.raises(ValueError, match="tau"):
        radial_mask(4, 4, 0.0)


def psnr_db(a: torch.Tensor, b: torch.Tensor) -> float:
    return -10 * math.log10(max((a - b).pow(2).mean().item(), 1e-30))


def test_full_mask_starts_at_the_seed_cutoff_and_ends_on_the_identity():
    schedule = TauSchedule(0.05, 1.0, steps=40)
    first = radial_mask(32, 48, schedule.tau(0), kind="full", progress=schedule.progress(0))
    torch.testing.assert_close(first, radial_mask(32, 48, 0.05, kind="seed"))
    x = torch.rand(2, 3, 256, 256)
    last = truncate(x, schedule.tau(39), "full", schedule.progress(39), schedule.tau_final)
    assert psnr_db(last, x) >= 60
    # The seed's mask at tau = 1 is far from the identity; that jump is what "full" removes.
    assert psnr_db(truncate(x, 1.0, "seed"), x) < 40
    # In between, the passband only widens: every coefficient's gain rises step by step.
    gains = [radial_mask(16, 16, schedule.tau(s), kind="full", progress=schedule.progress(s)) for s in range(40)]
    assert all((b >= a - 1e-6).all() for a, b in zip(gains, gains[1:]))


def test_truncate_keeps_low_and_drops_high_frequencies():
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
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


def test_tau_moves_every_step_then_phase1_ends():
    s = TauSchedule(0.05, 1.0, steps=100)
    assert s.tau(0) == pytest.approx(0.05) and s.tau(99) == pytest.approx(1.0)
    increments = [s.tau(e + 1) - s.tau(e) for e in range(99)]
    assert increments == pytest.approx([0.95 / 99] * 99)
    assert s.active(99) and not s.active(100)
    assert s.tau(100) is None and s.tau(1000) is None
    assert TauSchedule(0.2, 0.8, 1).tau(0) == pytest.approx(0.8)   # one step: the last, progress 1
    off = TauSchedule(steps=0)
    assert not off.active(0) and off.tau(0) is None
    x = torch.rand(1, 3, 64, 64)
    assert FrequencyTruncation(s).batch(x, 100) is x


@pytest.mark.parametrize(
    "kwargs",
    [dict(tau_init=0.0), dict(tau_init=1.5, tau_final=1.5), dict(tau_init=0.5, tau_final=0.4),
     dict(tau_final=1.5), dict(steps=-1)],
)
def test_tau_schedule_validation(kwargs):
    with pytest.raises(ValueError):
        TauSchedule(**kwargs)


def test_tau_schedule_rejects_negative_step():
    with pytest.raises(ValueError, match="step"):
        TauSchedule().tau(-1)
    with pytest.raises(ValueError, match="phase1 mask"):
        FrequencyTruncation(TauSchedule(), mask="box")


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

CHANNELS = (M, M, M)


def latent_grads(reg: InterScaleRegularizer, latents, masks=None) -> torch.Tensor:
    leaves = [y.detach().clone().requires_grad_() for y in latents]
    reg(leaves, masks)[0].backward()
    return torch.cat([y.grad.flatten() for y in leaves])


@pytest.mark.parametrize("aligner", ["adversarial", "ridge"])
def test_repel_and_attract_push_the_latents_in_opposite_directions(aligner):
    repel = InterScaleRegularizer(CHANNELS, delta=0.3, aligner=aligner, sign="repel")
    attract = InterScaleRegularizer(CHANNELS, delta=0.3, aligner=aligner, sign="attract")
    latents = scale_latents(batch=4)
    repel(scale_latents(seed=5, batch=4))          # the adversarial aligner fits an earlier batch
    attract.load_state_dict(repel.state_dict())
    (t_r, pairs_r), (t_a, pairs_a) = repel.eval()(latents), attract.eval()(latents)
    assert t_r < 0 < t_a
    torch.testing.assert_close(t_r, -t_a)
    assert list(pairs_r) == ["s1_s2", "s2_s3"]
    for name in pairs_r:  # logged distances are unsigned and unweighted
        assert pairs_r[name] > 0 and not pairs_r[name].requires_grad
    g_r, g_a = latent_grads(repel, latents), latent_grads(attract, latents)   # eval: no refit in between
    assert g_r.norm() > 0
    assert torch.nn.functional.cosine_similarity(g_r, g_a, dim=0) < -0.9


def test_adversarial_aligner_is_the_ridge_fit_of_earlier_batches_and_gets_no_gradient():
    reg = InterScaleRegularizer(CHANNELS, delta=0.2, aligner="adversarial", alignment="ll")
    first, second = scale_latents(seed=0, batch=8), scale_latents(seed=1, batch=8)
    reg(first)                                    # sees batch 1 (its prediction for it was 0)
    aligner = reg.aligners[0]
    x = as_rows(dwt_features(second[1], "ll"))
    predicted = aligner(dwt_features(second[1], "ll"), second[0])   # batch 2, from batch 1's fit
    fit = ridge_fit(as_rows(dwt_features(first[1], "ll")).double(), as_rows(first[0]).double(), 0.0)
    torch.testing.assert_close(as_rows(predicted).double(), ridge_predict(fit, x.double()), rtol=1e-3, atol=1e-3)
    state = {k: v.clone() for k, v in reg.state_dict().items()}
    reg.eval()
    reg(second)
    assert all(torch.equal(v, reg.state_dict()[k]) for k, v in state.items())   # validation never refits
    assert list(reg.parameters()) == []


@pytest.mark.parametrize("aligner, alignment, shapes", [
    ("adversarial", "subbands", []),
    ("joint", "ll", [(8, 6, 1, 1), (6, 4, 1, 1)]),
    ("ridge", "subbands", []),
])
def test_aligners_map_the_finer_channels_to_the_coarser(aligner, alignment, shapes):
    """Scales of different widths (as in DHIC): 4·C_fine (or C_fine for LL) → C_coarse."""
    reg = InterScaleRegularizer((8, 6, 4), aligner=aligner, alignment=alignment)
    assert [tuple(p.shape) for p in reg.parameters()] == shapes
    g = torch.Generator().manual_seed(0)
    latents = [torch.randn(2, c, 4 * k, 4 * k, generator=g) for c, k in ((8, 1), (6, 2), (4, 4))]
    total, _ = reg(latents)
    assert torch.isfinite(total) and total < 0


def test_new_scale_latents_mask_the_finer_latent_only():
    latents = scale_latents(batch=4)
    g = torch.Generator().manual_seed(1)
    masks = [(torch.rand(1, M, *y.shape[-2:], generator=g) < 0.5).float() for y in latents]
    masks[0] = torch.ones_like(masks[0])
    changed = [y + 10 * torch.randn(y.shape, generator=g) * (1 - m) for y, m in zip(latents, masks)]
    changed[1] = latents[1]      # s2 is also the coarse side of s2_s3: all of it counts there
    reg = InterScaleRegularizer(CHANNELS, aligner="ridge", scale_latents="new")
    torch.testing.assert_close(reg(latents, masks)[1]["s1_s2"], reg(changed, masks)[1]["s1_s2"])
    full = InterScaleRegularizer(CHANNELS, aligner="ridge", scale_latents="full")
    assert not torch.allclose(full(latents)[0], reg(latents, masks)[0])
    torch.testing.assert_close(full(latents)[0], reg(latents)[0])   # no masks (e.g. DHIC): every position


@pytest.mark.parametrize("aligner", ["adversarial", "ridge", "joint"])
def test_gradients_reach_latents_and_learned_aligners(aligner):
    reg = InterScaleRegularizer(CHANNELS, aligner=aligner)
    reg(scale_latents(seed=3, batch=4))
    latents = [y.requires_grad_() for y in scale_latents(batch=4)]
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


@pytest.mark.parametrize("aligner, distance, bound", [
    ("joint", "l2", 4.0), ("joint", "l1", 2.0), ("joint", "cosine", 2.0),
    ("adversarial", "l2", 4.0), ("ridge", "cosine", 2.0)])
def test_repel_is_bounded_under_optimisation(aligner, distance, bound, one_thread):
    torch.manual_seed(0)
    delta = 0.5
    latents = [torch.nn.Parameter(y) for y in scale_latents(batch=2)]
    reg = InterScaleRegularizer(CHANNELS, delta=delta, aligner=aligner, distance=distance, sign="repel")
    opt = torch.optim.Adam([*latents, *reg.parameters()], lr=1e-2)
    floor = -delta * bound * 2  # two pairs
    totals = []
    for _ in range(300):
        total, _ = reg(latents)
        opt.zero_grad()
        total.backward()
        opt.step()
        totals.append(total.item())
    assert all(math.isfinite(t) and t >= floor - 1e-4 for t in totals)
    assert min(totals) < totals[0]  # it did optimise


def test_zero_delta_is_off():
    reg = InterScaleRegularizer(CHANNELS, delta=0.0)
    total, pairs = reg([y.requires_grad_() for y in scale_latents()])
    assert total.item() == 0 and all(d.item() == 0 for d in pairs.values())


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(alignment="bands"), "'subbands', 'll'"), (dict(distance="l3"), "'l2', 'l1', 'cosine'"),
     (dict(sign="push"), "'repel', 'attract'"), (dict(scale_latents="all"), "'full', 'new'"),
     (dict(aligner="free"), "'adversarial', 'ridge', 'joint'"), (dict(delta=-0.1), "delta")],
)
def test_invalid_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        InterScaleRegularizer(CHANNELS, **kwargs)


def test_rejects_latents_that_do_not_double_in_size():
    s1, s2, _ = scale_latents()
    with pytest.raises(ValueError, match="double"):
        InterScaleRegularizer(CHANNELS)([s1, s2, s2])
