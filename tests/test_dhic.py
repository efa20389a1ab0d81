"""DHIC-style model: scales, gradients, real bitstreams equal to the eval forward, rate fidelity."""
import pytest
import torch

from trainable.bitstream import CodedImage
from trainable.checkpoint import save_atomic
from trainable.codec import decode, encode, load_image, save_image
from trainable.codec import main as codec_main
from trainable.models import create_model

from .helpers import image


def _bits(likelihoods) -> torch.Tensor:
    return sum(-torch.log2(l).sum() for l in likelihoods.values())


@pytest.fixture(scope="module")
def fitted():
    """DHIC_Tiny fitted for 60 Adam steps (the last 20 at a tenth of the rate, to settle the scales):
    its entropy parameters then match its latents, as in a trained model."""
    torch.manual_seed(0)
    model = create_model("DHIC_Tiny").train()
    x = torch.cat([image(128, 128, seed=s) for s in range(2)])
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    for step in range(60):
        if step == 40:
            for group in optimizer.param_groups:
                group["lr"] = 3e-4
        out = model(x)
        loss = 0.2 * 255**2 * torch.mean((out["x_hat"] - x) ** 2) + _bits(out["likelihoods"]) / x[:, 0].numel()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    model.eval().update()
    return model


def test_base_has_the_papers_four_scales():
    model = create_model("DHIC_Base").eval()
    assert (model.num_scales, model.scale_channels, model.coding_multiple) == (4, (320, 256, 128, 64), 64)
    with torch.no_grad():
        latents = model(image(64, 128), return_scale_latents=True)["scale_latents"]
    assert [tuple(t.shape) for t in latents] == [(1, 320, 1, 2), (1, 256, 2, 4), (1, 128, 4, 8), (1, 64, 8, 16)]


def test_tiny_shapes_per_scale():
    model = create_model("DHIC_Tiny").train()
    x = image(128, 192).repeat(2, 1, 1, 1)
    out = model(x, return_scale_latents=True)
    assert out["x_hat"].shape == x.shape
    channels = model.scale_channels
    expected = [(2, c, 128 // s, 192 // s) for c, s in zip(channels, (64, 32, 16, 8))]
    assert [tuple(t.shape) for t in out["scale_latents"]] == expected
    assert {k: tuple(v.shape) for k, v in out["likelihoods"].items() if k != "z"} == {
        f"y{i + 1}": shape for i, shape in enumerate(expected)}
    assert tuple(out["likelihoods"]["z"].shape[-2:]) == (1, 2)          # hyperprior: half the top scale, rounded up
    assert "scale_new_masks" not in out                                  # distinct tensors: every position is new


def test_gradients_reach_every_scale():
    model = create_model("DHIC_Tiny").train()
    x = image(128, 128).repeat(2, 1, 1, 1)
    out = model(x, return_scale_latents=True)
    for t in out["scale_latents"]:                    # each scale latent carries gradient to the encoder
        model.zero_grad()
        t.pow(2).mean().backward(retain_graph=True)
        assert model.stem[0].weight.grad.abs().sum() > 0
    model.zero_grad()
    (torch.mean((out["x_hat"] - x) ** 2) + _bits(out["likelihoods"])).backward()
    for i, level in enumerate(model.levels):          # and the RD loss trains every scale's modules
        for part in ("prior", "posterior", "merge") + (("up",) if i else ()):
            grads = [p.grad for p in getattr(level, part).parameters()]
            assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0, (i, part)


def _capture_priors(model):
    """Forward hooks recording every level's prior output (scales, means) and posterior y."""
    seen = {"prior": [], "posterior": []}
    hooks = [getattr(level, part).register_forward_hook(lambda m, i, o, part=part: seen[part].append(o))
             for level in model.levels for part in ("prior", "posterior")]
    return seen, hooks


def test_residuals_are_the_coded_symbols_round_y_minus_mu(fitted):
    """scale_residuals = round(y - mu) (what the coder codes), scale_latents = that + mu; mu and y
    read independently from the prior / posterior modules."""
    seen, hooks = _capture_priors(fitted)
    with torch.no_grad():
        out = fitted(image(128, 192, seed=3), return_scale_latents=True)
    for h in hooks:
        h.remove()
    for i, (res, lat) in enumerate(zip(out["scale_residuals"], out["scale_latents"])):
        mu = seen["prior"][i].float().chunk(2, 1)[1]
        y = seen["posterior"][i].float()
        assert torch.allclose(res, torch.round(y - mu), atol=1e-5), i
        assert torch.allclose(lat - res, mu, atol=1e-5), i
        assert mu.abs().mean() > 0.01, "mu must be non-trivial, or the choice would not matter"
    assert sum(int(r.abs().sum() > 0) for r in out["scale_residuals"]) >= 2, "a fitted model codes symbols"


def test_residual_gradient_is_plus_one_to_y_and_minus_one_to_mu():
    """Straight-through: Phase 2 on the residual pushes the encoder's y and the prior's mu oppositely."""
    torch.manual_seed(0)
    model = create_model("DHIC_Tiny").train()
    seen, hooks = _capture_priors(model)
    out = model(image(128, 128), return_scale_latents=True)
    for h in hooks:
        h.remove()
    prior, y = seen["prior"][2], seen["posterior"][2]
    g_prior, g_y = torch.autograd.grad(out["scale_residuals"][2].sum(), (prior, y), retain_graph=True)
    c = prior.shape[1] // 2
    assert torch.all(g_y == 1) and torch.all(g_prior[:, c:] == -1) and torch.all(g_prior[:, :c] == 0)


def test_phase2_compares_residuals_under_new_and_decoded_latents_under_full():
    from trainable.models.interface import carried_latents

    model = create_model("DHIC_Tiny").eval()
    with torch.no_grad():
        out = model(image(128, 128), return_scale_latents=True)
    assert carried_latents(out, "new") == (out["scale_residuals"], None)
    assert carried_latents(out, "full") == (out["scale_latents"], None)
    hpcm = create_model("HPCM_Tiny").eval()
    with torch.no_grad():
        out = hpcm(image(64, 64), return_scale_latents=True)
    latents, masks = carried_latents(out, "new")             # nested scales: latents with their new positions
    assert latents == out["scale_latents"] and masks is out["scale_new_masks"]


def test_by_default_phase2_and_the_measure_read_what_each_model_declares():
    """DHIC: the decoded latents (its residuals carry no inter-scale R^2 to remove); HPCM: the
    new positions of its nested scales; an explicit --scale-latents overrides."""
    from trainable.config import TrainConfig
    from trainable.models.interface import default_latents
    from trainable.trainer import Run, evaluate
    from trainable.loss import RateDistortionLoss
    from trainable.regularizers import inter_scale_r2, pair_rows

    assert TrainConfig().scale_latents == "model"
    for name, declared in (("DHIC_Tiny", "full"), ("HPCM_Tiny", "new")):
        run = Run(TrainConfig(model_name=name, phase2_reg=True, device="cpu"), torch.device("cpu"), 1)
        assert default_latents(run.model) == declared and run.phase2.scale_latents == declared
        explicit = Run(TrainConfig(model_name=name, phase2_reg=True, device="cpu", scale_latents="new"),
                       torch.device("cpu"), 1)
        assert explicit.phase2.scale_latents == "new"
    model = create_model("DHIC_Tiny").eval()
    x = image(128, 128)
    metrics = evaluate(model, [(x * 255).round().to(torch.uint8)], RateDistortionLoss(0.01), torch.device("cpu"))
    with torch.no_grad():
        out = model(x, return_scale_latents=True)
    expected = inter_scale_r2([pair_rows(out["scale_latents"], None, (1.0, 1.0))], ["s1_s2", "s2_s3", "s3_s4"])
    residuals = inter_scale_r2([pair_rows(out["scale_residuals"], None, (1.0, 1.0))], ["s1_s2", "s2_s3", "s3_s4"])
    key = "val_inter_scale_r2_s3_s4"
    assert metrics[key] == pytest.approx(expected[key]) and metrics[key] != pytest.approx(residuals[key])


@pytest.mark.parametrize("h,w", [(70, 90), (130, 97), (64, 64)])
def test_decode_equals_eval_forward(fitted, h, w):
    x = image(h, w, seed=2)
    coded = CodedImage.from_bytes(encode(fitted, x).to_bytes())
    assert len(coded.payloads) == fitted.num_payloads == 5
    x_dec = decode(fitted, coded)
    with torch.no_grad():
        x_fwd = fitted(x)["x_hat"].clamp(0, 1)
    assert x_dec.shape == x.shape
    assert (x_dec - x_fwd).abs().max().item() <= 1e-6


def test_real_rate_within_two_percent_of_estimate(fitted):
    real = est = 0.0
    for seed in (0, 7):
        x = image(256, 256, seed=seed)
        real += 8 * sum(len(p) for p in encode(fitted, x).payloads)
        with torch.no_grad():
            est += _bits(fitted(x)["likelihoods"]).item()
    assert est / (2 * 256 * 256) > 0.1, "test model should code at a realistic rate"
    assert abs(real - est) / est < 0.02


def test_update_and_weights_round_trip(fitted):
    x = image(64, 128, seed=4)
    with torch.no_grad():
        before = fitted(x)["x_hat"]
        fitted.update()                                   # tables only: the forward does not change
        assert torch.equal(before, fitted(x)["x_hat"])
    copy = create_model("DHIC_Tiny")
    copy.load_state_dict(fitted.state_dict())            # tables of any size load strictly
    assert encode(copy.eval(), x).payloads == encode(fitted, x).payloads


def test_codec_cli_round_trip(tmp_path, fitted):
    """The CLI in-process (its subprocess behaviour is tested with HPCM in test_codec.py)."""
    ckpt, src, bits, out = tmp_path / "m.pth", tmp_path / "in.png", tmp_path / "in.hpcm", tmp_path / "out.png"
    save_atomic(fitted.state_dict(), ckpt)
    save_image(image(70, 90), src)
    assert codec_main(["encode", str(src), "-o", str(bits), "--model", "DHIC_Tiny", "--checkpoint", str(ckpt)]) == 0
    assert codec_main(["decode", str(bits), "-o", str(out), "--checkpoint", str(ckpt)]) == 0
    with torch.no_grad():
        expected = fitted(load_image(src))["x_hat"].clamp(0, 1)
    assert (load_image(out) - expected).abs().max().item() <= 1 / 255 + 1e-6


@pytest.mark.parametrize("scale_latents", ["new", "full"])
def test_both_regularizers_act_on_dhic(tmp_path, monkeypatch, fitted, scale_latents):
    """``full`` (decoded latents, mu included) acts from the first step. ``new`` (the coded residuals)
    only where a scale codes symbols: an untrained DHIC codes none (every residual rounds to 0), so
    it starts from the fitted weights (whose coarse scales may still code nothing: distance 0)."""
    from trainable.config import TrainConfig
    from trainable.trainer import train

    monkeypatch.setenv("HPCM_TUNE_CACHE", str(tmp_path / "cache"))
    save_atomic(fitted.state_dict(), tmp_path / "init.pth")
    config = TrainConfig(model_name="DHIC_Tiny", epochs=2, batch_size=2, patch_size=128, steps_per_epoch=2,
                         num_workers=0, learning_rate=1e-4, spectral_reg=True, truncation_epochs=1,
                         phase2_reg=True, phase2_start_epoch=0, save_path=str(tmp_path / "run"), real_bpp=False,
                         scale_latents=scale_latents,
                         init_weights=str(tmp_path / "init.pth") if scale_latents == "new" else None)
    rows = []
    train(config, lambda m, d: rows.append(m))
    assert [m["phase"] for m in rows] == ["phase1_intra", "baseline"]
    pairs = ("s1_s2", "s2_s3", "s3_s4")                   # 3 adjacent pairs, channels 32/24/16/8 aligned
    for m in rows:
        distances = [m[f"inter_scale_{p}"] for p in pairs]
        assert m["inter_scale_reg"] < 0                   # repel: minus delta times the distances
        assert max(distances) > 0 and min(distances) >= 0, distances
        # training metrics finite (the validation measure is NaN for a scale that codes nothing)
        assert all(v == v for k, v in m.items() if isinstance(v, float) and not k.startswith("val_inter_scale"))
