"""DHIC-style hierarchical image codec: four scale latents coded top-down, coarse to fine.

*Reconstructed from the description in* "Taming Hierarchical Image Coding Optimization:
A Spectral Regularization Perspective" (ICLR 2026); the authors' code is not public, so
everything beyond "latents z1..z4 at strides 64/32/16/8 with 320/256/128/64 channels,
each scale's entropy model conditioned on the decoded coarser scales, a hyperprior at the
top" is our assumption (listed in docs/training.md, section "DHIC-style model").

Data flow (scale 1 is the coarsest; ``e_i`` are bottom-up encoder features)::

    x -> stem -> e_4 (stride 8) -> e_3 (16) -> e_2 (32) -> e_1 (64)     bottom-up (encoder only)
    z = h_a(e_1) (stride 128)  -- EntropyBottleneck, payload 0
    c_1 = h_s(z^)                                                       top-down (encoder and decoder)
    for i = 1..4:
        c_i = up_i(s_{i-1})            (i > 1)   the context at scale i, from decoded scales < i
        mu_i, sigma_i = prior_i(c_i)             Gaussian conditional, payload i
        y_i = posterior_i(e_i, c_i)              encoder side only
        y^_i = round(y_i - mu_i) + mu_i
        s_i = merge_i(c_i, y^_i)
    x^ = g_s(s_4)

``scale_latents`` are y^_1..y^_4 and ``scale_residuals`` the symbols each scale codes,
round(y_i - mu_i) (straight-through rounding in training, so gradients reach every scale): the
residual is what the encoder chose to carry at that scale, y^_i adds the prior network's mean,
which the coarser scales already determine. Phase 2 and the predictability measure read the decoded
y^_i by default (``phase2_latents = "full"``): the residuals already carry no inter-scale R^2
without any regularizer (-0.03 against 0.12 / 0.35 for y^ on s2_s3 / s3_s4), so a repel term
on them has nothing to remove and the measure nothing to show; ``--scale-latents new`` reads
the residuals; ``compress`` writes 5 payloads (z, y1..y4) with compressai's
EntropyBottleneck / GaussianConditional rANS coders, and ``decompress`` runs the same
top-down loop, so its output equals the eval forward.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import GDN
from torch import nn

from ..entropy.buffers import resize_table_buffers
from ..errors import InputError
from .ops import crop_to, in_weight_format, pad_to_multiple, padded_size, ste_round
from .registry import register_model

# (scale index, context, scales, means) -> decoded latent y^_i of that scale.
ScaleCoder = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class DHICConfig:
    """Widths of one DHIC variant, every tuple ordered coarse -> fine.

    ``latent_channels`` the channels of z1..zN; ``widths`` the feature channels at each
    latent's stride; ``finest_stride`` the stride of zN (each coarser scale doubles it);
    ``hyper_channels`` the hyper-latent channels; ``depth`` residual blocks per stage.
    """

    latent_channels: tuple[int, ...] = (320, 256, 128, 64)
    widths: tuple[int, ...] = (320, 256, 192, 128)
    hyper_channels: int = 192
    depth: int = 2
    finest_stride: int = 8

    def __post_init__(self):
        n = len(self.latent_channels)
        if n < 2 or len(self.widths) != n:
            raise InputError(f"DHIC needs >= 2 scales and one width per scale, got {self.latent_channels} / {self.widths}")
        if self.finest_stride < 2 or self.finest_stride & (self.finest_stride - 1):
            raise InputError(f"finest_stride must be a power of 2 >= 2, got {self.finest_stride}")

    @property
    def strides(self) -> tuple[int, ...]:
        n = len(self.latent_channels)
        return tuple(self.finest_stride * 2 ** (n - 1 - i) for i in range(n))


PRESETS = {
    "DHIC_Base": DHICConfig(),
    # ~100x fewer parameters: for tests and CPU demos, not for RD results.
    "DHIC_Tiny": DHICConfig(latent_channels=(32, 24, 16, 8), widths=(32, 32, 24, 16), hyper_channels=16, depth=1),
}


def default_scale_table(levels: int = 128) -> torch.Tensor:
    """Log-spaced Gaussian scales in [0.11, 256]. Twice compressai's 64 levels: the coder
    rounds each scale up to the next entry, and the finer grid halves that rate overhead."""
    return torch.exp(torch.linspace(math.log(0.11), math.log(256.0), levels))


def _full_precision(t: torch.Tensor):
    """Likelihoods in float32 even under bf16 autocast (small probabilities dominate the rate)."""
    return torch.autocast(t.device.type, enabled=False)


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1)


def _down(in_ch: int, out_ch: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 5, stride=2, padding=2)


def _deconv(in_ch: int, out_ch: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(in_ch, out_ch, 5, stride=2, padding=2, output_padding=1)


def _up(in_ch: int, out_ch: int) -> nn.Sequential:
    """x2 upsampling by sub-pixel convolution."""
    return nn.Sequential(_conv3x3(in_ch, 4 * out_ch), nn.PixelShuffle(2))


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(_conv3x3(channels, channels), nn.LeakyReLU(), _conv3x3(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _blocks(channels: int, depth: int) -> list[nn.Module]:
    return [ResBlock(channels) for _ in range(depth)]


class Level(nn.Module):
    """The top-down modules of one scale: context, prior, posterior, merge."""

    def __init__(self, width: int, channels: int, coarser_width: int | None, depth: int):
        super().__init__()
        self.up = (nn.Sequential(_up(coarser_width, width), *_blocks(width, depth))
                   if coarser_width is not None else None)
        self.prior = nn.Sequential(_conv3x3(width, width), nn.LeakyReLU(), _conv3x3(width, 2 * channels))
        self.posterior = nn.Sequential(_conv3x3(2 * width, width), nn.LeakyReLU(), _conv3x3(width, channels))
        self.merge = nn.Sequential(nn.Conv2d(width + channels, width, 1), *_blocks(width, depth))


class DHIC(nn.Module):
    """DHIC-style 4-scale top-down hierarchical codec (see the module docstring)."""

    phase2_latents = "full"      # Phase 2 and the measure read y^_i, not the residuals (module docstring)

    def __init__(self, cfg: DHICConfig, name: str = "DHIC_custom"):
        super().__init__()
        self.cfg, self.name = cfg, name
        widths, depth, fine = cfg.widths, cfg.depth, cfg.widths[-1]
        n_down = int(math.log2(cfg.finest_stride))
        # Image <-> finest features: strided 5x5 convolutions with GDN, as in Balle et al.'s transforms.
        stem_widths = [3] + [fine // 2] * (n_down - 1) + [fine]
        stem: list[nn.Module] = []
        for k in range(n_down):
            stem += [_down(stem_widths[k], stem_widths[k + 1]), GDN(stem_widths[k + 1])]
        self.stem = nn.Sequential(*stem[:-1])
        # downs[i] maps the features of scale i + 1 to scale i (coarser).
        self.downs = nn.ModuleList(nn.Sequential(GDN(widths[i + 1]), _conv3x3(widths[i + 1], widths[i], 2))
                                   for i in range(len(widths) - 1))
        self.h_a = nn.Sequential(_conv3x3(widths[0], cfg.hyper_channels), nn.LeakyReLU(),
                                 _conv3x3(cfg.hyper_channels, cfg.hyper_channels, 2))
        self.h_s = nn.Sequential(_conv3x3(cfg.hyper_channels, widths[0]), nn.LeakyReLU(), _up(widths[0], widths[0]))
        self.levels = nn.ModuleList(Level(w, c, widths[i - 1] if i else None, depth)
                                    for i, (w, c) in enumerate(zip(widths, cfg.latent_channels)))
        g_s: list[nn.Module] = []
        for k in range(n_down, 0, -1):
            g_s += [GDN(stem_widths[k], inverse=True), _deconv(stem_widths[k], stem_widths[k - 1])]
        self.g_s = nn.Sequential(*g_s)
        self.entropy_bottleneck = EntropyBottleneck(cfg.hyper_channels)
        # Likelihoods floored at 2^-16, the least probability compressai's 16-bit rANS tables give
        # an in-range symbol: the estimate never charges a surprise more than the coder does.
        self.gaussian_conditional = GaussianConditional(None, likelihood_bound=2.0 ** -16)

    # ------------------------------------------------------------------ the interface
    @property
    def num_scales(self) -> int:
        return len(self.cfg.latent_channels)

    @property
    def scale_channels(self) -> tuple[int, ...]:
        return tuple(self.cfg.latent_channels)

    @property
    def coding_multiple(self) -> int:
        return self.cfg.strides[0]

    @property
    def num_payloads(self) -> int:
        return 1 + self.num_scales

    # ------------------------------------------------------------------ shared pieces
    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return self._fmt(pad_to_multiple(x, self.coding_multiple))

    def _fmt(self, t: torch.Tensor) -> torch.Tensor:
        """Inputs of the conv nets in the weights' memory format, in every path alike."""
        return in_weight_format(t, self.stem[0].weight)

    def _analysis(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Bottom-up encoder features of every scale, coarse -> fine."""
        features = [self.stem(x)]
        for down in reversed(self.downs):
            features.insert(0, down(features[0]))
        return features

    def _z_medians(self) -> torch.Tensor:
        return self.entropy_bottleneck.quantiles[:, 0, 1].detach().view(1, -1, 1, 1)

    def _top_down(self, z_hat: torch.Tensor, top_size: tuple[int, int], code: ScaleCoder):
        """Decode scales coarse -> fine; ``code`` supplies each scale's y^ given its entropy parameters.
        Returns the last state, every y^ and every prior mean."""
        context = self.h_s(self._fmt(z_hat))[..., : top_size[0], : top_size[1]]
        latents, means_all, state = [], [], None
        for i, level in enumerate(self.levels):
            if level.up is not None:
                context = level.up(state)
            scales, means = level.prior(context).float().chunk(2, 1)
            y_hat = code(i, context, scales, means)
            latents.append(y_hat)
            means_all.append(means)
            state = level.merge(torch.cat((context, self._fmt(y_hat).to(context.dtype)), 1))
        return state, latents, means_all

    def _posterior(self, i: int, features: list[torch.Tensor], context: torch.Tensor) -> torch.Tensor:
        return self.levels[i].posterior(torch.cat((features[i], context), 1)).float()

    # ------------------------------------------------------------------ training / eval
    def forward(self, x: torch.Tensor, return_scale_latents: bool = False) -> dict:
        """Noisy-likelihood + straight-through (training) or rounded (eval) pass.

        Any image size: padded to ``coding_multiple`` and x_hat cropped back. Likelihoods
        ``z`` and ``y1``..``yN`` (coarse to fine); with ``return_scale_latents`` also the decoded
        ``scale_latents`` y^_i and the coded ``scale_residuals`` y^_i - mu_i = round(y_i - mu_i).
        """
        size = x.shape[-2:]
        features = self._analysis(self._prepare(x))
        z = self.h_a(features[0]).float()
        with _full_precision(z):
            _, z_likelihoods = self.entropy_bottleneck(z)
        medians = self._z_medians()
        z_hat = (ste_round if self.training else torch.round)(z - medians) + medians
        likelihoods = {"z": z_likelihoods}
        quantize = ste_round if self.training else torch.round

        def code(i, context, scales, means):
            y = self._posterior(i, features, context)
            with _full_precision(y):
                _, likelihoods[f"y{i + 1}"] = self.gaussian_conditional(y, scales, means)
            return quantize(y - means) + means

        state, latents, means = self._top_down(z_hat, features[0].shape[-2:], code)
        out = {"x_hat": crop_to(self.g_s(state), size), "likelihoods": likelihoods}
        if return_scale_latents:
            out["scale_latents"] = latents
            out["scale_residuals"] = [y_hat - mu for y_hat, mu in zip(latents, means)]
        return out

    # ------------------------------------------------------------------ real bitstreams
    def update(self, scale_table: torch.Tensor | None = None) -> None:
        """Build the rANS tables. The bottleneck's tails are found from its learned density
        (compressai's bisection: no auxiliary loss is trained); its medians, which set how
        z is quantized, are left as they are so ``update()`` never changes the forward."""
        table = default_scale_table() if scale_table is None else scale_table
        self.gaussian_conditional.update_scale_table(table.tolist(), force=True)
        bottleneck = self.entropy_bottleneck
        medians = bottleneck.quantiles[:, :, 1:2].detach().clone()
        bottleneck.update(force=True, update_quantiles=True)
        with torch.no_grad():
            bottleneck.quantiles[:, :, 1:2] = medians
        bottleneck.update(force=True)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Accept entropy tables of any size (empty before ``update()``, filled after)."""
        resize_table_buffers(self, state_dict)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    @torch.no_grad()
    def compress(self, x: torch.Tensor) -> dict:
        """One image [1,3,H,W] -> {"strings": [z, y1, ..., yN], "shape": (H, W)}."""
        if x.shape[0] != 1:
            raise ValueError("compress() codes one image at a time (batch size 1)")
        shape = tuple(x.shape[-2:])
        features = self._analysis(self._prepare(x))
        z = self.h_a(features[0]).float()
        strings = [self.entropy_bottleneck.compress(z)[0]]
        medians = self._z_medians()
        conditional = self.gaussian_conditional

        def code(i, context, scales, means):
            y = self._posterior(i, features, context)
            strings.append(conditional.compress(y, conditional.build_indexes(scales), means)[0])
            return torch.round(y - means) + means

        self._top_down(torch.round(z - medians) + medians, features[0].shape[-2:], code)
        return {"strings": strings, "shape": shape}

    @torch.no_grad()
    def decompress(self, strings: list[bytes], shape: tuple[int, int]) -> dict:
        """Decode what :meth:`compress` wrote; returns {"x_hat": [1,3,H,W] in [0,1]}."""
        if len(strings) != self.num_payloads:
            raise ValueError(f"{self.name} decodes {self.num_payloads} payloads, got {len(strings)}")
        h, w = padded_size(shape, self.coding_multiple)
        top = (h // self.coding_multiple, w // self.coding_multiple)
        z_hat = self.entropy_bottleneck.decompress([strings[0]], (-(-top[0] // 2), -(-top[1] // 2)))
        conditional = self.gaussian_conditional

        def code(i, context, scales, means):
            return conditional.decompress([strings[i + 1]], conditional.build_indexes(scales), means=means)

        state, _, _ = self._top_down(z_hat.to(self.stem[0].weight.device), top, code)
        return {"x_hat": crop_to(self.g_s(state).clamp_(0, 1), shape)}


@register_model("DHIC_Base")
def dhic_base(**overrides) -> DHIC:
    return DHIC(replace(PRESETS["DHIC_Base"], **overrides), name="DHIC_Base")


@register_model("DHIC_Tiny")
def dhic_tiny(**overrides) -> DHIC:
    return DHIC(replace(PRESETS["DHIC_Tiny"], **overrides), name="DHIC_Tiny")
