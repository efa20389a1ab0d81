"""Phase 2 on real HPCM_Tiny latents: the adversarial aligner is the best linear predictor,
and the term it defines keeps shaping the encoder (unlike ``joint``, which saturates)."""
import pytest
import torch

from tests.helpers import image, tiny_model
from trainable.loss import RateDistortionLoss
from trainable.regularizers import DISTANCES, InterScaleRegularizer, dwt_features, rms_normalize
from trainable.regularizers.inter_scale import pairs_fine
from trainable.regularizers.ridge import as_rows, from_rows, ridge_fit, ridge_predict

CHANNELS = (32, 32, 32)


@pytest.fixture(scope="module")
def batch():
    torch.manual_seed(0)
    model = tiny_model(stretch=4.0).train()
    g = torch.Generator().manual_seed(0)
    x = torch.cat([0.6 * image(256, 256, seed=s) + 0.4 * torch.rand(1, 3, 256, 256, generator=g) for s in range(4)])
    with torch.no_grad():
        out = model(x, return_scale_latents=True)
    return model, x, [t.detach() for t in out["scale_latents"]], out["scale_new_masks"]


def fit_aligner(reg: InterScaleRegularizer, latents, masks, steps: int = 300) -> dict[str, float]:
    """Fit the aligner alone on frozen latents (Adam when it learns by gradient); its distances."""
    params = list(reg.parameters())
    opt = torch.optim.Adam(params, lr=3e-2) if params else None
    for _ in range(steps):
        total, pairs = reg(latents, masks)
        if opt:
            opt.zero_grad()
            total.backward()
            opt.step()
    return {k: v.item() for k, v in reg.eval()(latents, masks)[1].items()}


def latent_gradient_ratio(model, x, reg) -> float:
    """|d term / d y| / |d RD loss / d y| on the same analysis latents y."""
    ys = []
    hook = model.g_a.register_forward_hook(lambda module, inputs, output: ys.append(output))
    out = model(x, return_scale_latents=True)
    hook.remove()
    rd = RateDistortionLoss(0.013)(out, x)["loss"]
    g_rd, = torch.autograd.grad(rd, ys[0], retain_graph=True)
    g_term, = torch.autograd.grad(reg(out["scale_latents"], out["scale_new_masks"])[0], ys[0])
    return (g_term.norm() / g_rd.norm()).item()


def test_adversarial_aligner_converges_to_the_ridge_solution(batch):
    _, _, latents, masks = batch
    reg = InterScaleRegularizer(CHANNELS, delta=0.1, aligner="adversarial", sign="repel")
    learned = fit_aligner(reg, latents, masks, steps=3)
    for name, aligner, coarse, fine in zip(reg.pair_names, reg.aligners, latents[:-1], pairs_fine(latents, masks)):
        x, y = as_rows(dwt_features(fine, "subbands")).double(), as_rows(coarse).double()
        best = from_rows(ridge_predict(ridge_fit(x, y, aligner.ridge), x), coarse).float()
        closed_form = DISTANCES["l2"](rms_normalize(coarse), rms_normalize(best)).item()
        assert learned[name] == pytest.approx(closed_form, rel=0.05), name


def test_the_term_keeps_reaching_the_encoder_while_joint_saturates(batch):
    model, x, latents, masks = batch
    adversarial = InterScaleRegularizer(CHANNELS, delta=0.1, aligner="adversarial", sign="repel")
    fit_aligner(adversarial, latents, masks, steps=3)
    joint = InterScaleRegularizer(CHANNELS, delta=0.1, aligner="joint", sign="repel", scale_latents="full")
    saturated = fit_aligner(joint, latents, masks, steps=400)
    assert all(d > 0.99 * 4 for d in saturated.values())      # the bound, reached by the aligner alone
    ours, theirs = latent_gradient_ratio(model, x, adversarial), latent_gradient_ratio(model, x, joint)
    assert ours >= 0.01
    assert theirs < ours / 5
