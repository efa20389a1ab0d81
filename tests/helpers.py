"""Small shared fixtures-as-functions for the test suite."""
from __future__ import annotations

import torch

from trainable.models import HPCM, create_model


def tiny_model(seed: int = 0, stretch: float = 1.0) -> HPCM:
    """HPCM_Tiny with deterministic weights.

    ``stretch`` scales the last analysis conv so the latent has realistic magnitudes:
    an untrained model codes at ~0.01 bpp, where the rANS streams' fixed few-byte
    overhead dominates; training would grow y the same way.
    """
    torch.manual_seed(seed)
    model = create_model("HPCM_Tiny")
    with torch.no_grad():
        last = model.g_a.branch[-1]
        last.weight.mul_(stretch)
        last.bias.mul_(stretch)
    return model


def image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A smooth-plus-texture test image in [0,1] (random noise alone is unrealistically hard)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([xx, yy, (xx + yy) / 2]) * 0.8 + 0.1
    return (base + 0.05 * torch.randn(3, h, w, generator=g)).clamp(0, 1).unsqueeze(0)


def fitted_tiny_model(steps: int = 60, lmbda: float = 0.05) -> "HPCM":
    """HPCM_Tiny fitted for a few Adam steps to :func:`image`-like content.

    Its entropy parameters then match its latents, as in a trained model, so
    estimated and real rates are comparable (an untrained model is not calibrated).
    """
    model = tiny_model(stretch=4.0).train()
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    x = torch.cat([image(256, 256, seed=s) for s in range(2)])
    for _ in range(steps):
        out = model(x)
        bpp = sum(-torch.log2(l).sum() for l in out["likelihoods"].values()) / x[:, 0].numel()
        loss = lmbda * 255**2 * torch.mean((out["x_hat"] - x) ** 2) + bpp
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval().update()
    return model
