"""HPCM: Hierarchical Progressive Context Model (Li et al., ICCV 2025).

Same module names, parameters and numerics as the official implementation
(lyq133/LIC-HPCM), so released checkpoints load strictly and give the released
results. What differs is how the coding schedule is executed: step masks and
index maps are precomputed per latent shape (``schedule``), scales are taken as
strided polyphase slices instead of ``masked_select``, decoded values are
accumulated in place of re-summing stacked lists, and one loop serves training,
encoding and decoding, each supplying its own per-step coder.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from compressai.ans import BufferedRansEncoder, RansDecoder
from torch import nn

from ..entropy import GeneralizedGaussian, RansTables, decode_symbols, encode_symbols
from .config import HPCMConfig, preset
from .context import CrossAttentionCell, SpatialPrior
from .layers import conv1x1
from .ops import crop_to, full_precision, in_weight_format, pad_to_multiple, padded_size, ste_round
from .registry import register_model
from .schedule import S1_PHASE, S2_PHASE, Schedule, schedule, subsample, upsample
from .transforms import analysis, hyper_analysis, hyper_synthesis, synthesis

CDF_BUFFERS = ("scale_table", "quantized_cdf_z", "cdf_length_z", "offset_z",
               "quantized_cdf_y", "cdf_length_y", "offset_y")

# A step coder gets (scale level, scales, means, step mask, channel groups) and
# returns the step's decoded latent values (zero outside the mask).
StepCoder = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]


def default_scale_table() -> torch.Tensor:
    """60 log-spaced scales in [0.12, 64], as the official evaluation uses."""
    return torch.exp(torch.linspace(math.log(0.12), math.log(64.0), 60))


def uniform_noise(t: torch.Tensor) -> torch.Tensor:
    """U(-0.5, 0.5) noise drawn in logical (NCHW) order whatever ``t``'s memory format,
    so a seed gives the same noise as the official model's."""
    return torch.empty(t.shape, dtype=t.dtype, device=t.device).uniform_(-0.5, 0.5)


@dataclass
class _Decoded:
    """Running sums of one scale: decoded latent and the per-position entropy parameters."""

    y_hat: torch.Tensor
    scales: torch.Tensor
    means: torch.Tensor

    def add(self, y_hat: torch.Tensor, scales: torch.Tensor, means: torch.Tensor) -> None:
        self.y_hat = self.y_hat + y_hat
        self.scales = self.scales + scales
        self.means = self.means + means

    def upsample(self, phases) -> "_Decoded":
        return _Decoded(upsample(self.y_hat, phases), upsample(self.scales, phases), upsample(self.means, phases))


class HPCM(nn.Module):
    """HPCM behind the :class:`~trainable.models.interface.CompressionModel` interface.

    Its three scales are nested polyphase subsets of one latent y (M channels each);
    ``compress`` writes two payloads, y then z.
    """

    num_scales = 3
    num_payloads = 2
    phase2_latents = "new"       # the nested scales: each finer latent masked to the positions it adds

    def __init__(self, cfg: HPCMConfig, name: str = "HPCM_custom"):
        super().__init__()
        M, N = cfg.M, cfg.N
        self.cfg, self.name = cfg, name
        self.g_a, self.g_s = analysis(cfg), synthesis(cfg)
        self.h_a, self.h_s = hyper_analysis(cfg), hyper_synthesis(cfg)
        self.means_hyper = nn.Parameter(torch.zeros(1, N, 1, 1))
        self.scales_hyper = nn.Parameter(torch.ones(1, N, 1, 1))
        self.entropy_estimation = GeneralizedGaussian()
        for name in CDF_BUFFERS:
            self.register_buffer(name, torch.Tensor())

        self.y_spatial_prior_adaptor_list_s1 = nn.ModuleList(conv1x1(3 * M, 3 * M) for _ in range(1))
        self.y_spatial_prior_adaptor_list_s2 = nn.ModuleList(conv1x1(3 * M, 3 * M) for _ in range(3))
        self.y_spatial_prior_adaptor_list_s3 = nn.ModuleList(conv1x1(3 * M, 3 * M) for _ in range(6))
        self.y_spatial_prior_s1_s2 = SpatialPrior(M, cfg.prior_depths_s12)
        self.y_spatial_prior_s3 = SpatialPrior(M, cfg.prior_depths_s3)
        self.adaptive_params_list = nn.ParameterList(nn.Parameter(torch.ones(1, 3 * M, 1, 1)) for _ in range(10))
        self.attn_s1, self.attn_s2, self.attn_s3 = (
            CrossAttentionCell(2 * M, window, cfg.heads) for window in cfg.windows)
        self.context_net = nn.ModuleList(conv1x1(2 * M, 2 * M) for _ in range(2))

    @property
    def scale_channels(self) -> tuple[int, ...]:
        return (self.cfg.M,) * self.num_scales

    @property
    def coding_multiple(self) -> int:
        return self.cfg.multiple

    # ------------------------------------------------------------------ training / eval
    def forward(self, x: torch.Tensor, return_scale_latents: bool = False) -> dict:
        """Noisy (training) or rounded (eval) pass; CompressAI output convention.

        Inputs of any size are zero-padded to ``cfg.multiple`` and x_hat cropped back.
        With ``return_scale_latents`` the decoded latent of each scale is returned at
        that scale's resolution (s1 [B,M,h/4,w/4], s2 [B,M,h/2,w/2], s3 [B,M,h,w]),
        with gradients in training mode, plus the masks of positions new at each scale.
        """
        size = x.shape[-2:]
        y = self.g_a(self._prepare(x)).float()     # the latent and all that is coded stay fp32 under autocast
        z = self.h_a(y).float()
        with full_precision(x.device):
            z_res = z - self.means_hyper
            if self.training:
                z_hat = ste_round(z_res) + self.means_hyper
                z_likelihoods = self.entropy_estimation(z_res + uniform_noise(z_res), self.scales_hyper)
            else:
                z_res = torch.round(z_res)
                z_hat = z_res + self.means_hyper
                z_likelihoods = self.entropy_estimation(z_res, self.scales_hyper)

        targets = self._scale_targets(y)
        quantize = ste_round if self.training else torch.round

        def step(level, scales, means, mask, groups):
            means = means * mask
            return quantize((targets[level] - means) * mask) + means

        decoded, latents, sched = self._progressive(self.h_s(z_hat), step)
        with full_precision(x.device):
            y_res = y - decoded.means
            y_res = y_res + uniform_noise(y_res) if self.training else torch.round(y_res)
            y_likelihoods = self.entropy_estimation(y_res, decoded.scales)
        out = {
            "x_hat": crop_to(self.g_s(decoded.y_hat), size),
            "likelihoods": {"y": y_likelihoods, "z": z_likelihoods},
        }
        if return_scale_latents:
            out["scale_latents"] = latents
            out["scale_new_masks"] = sched.new_masks
        return out

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Pad to the coding multiple, in the memory format of the weights (see ``create_model``)."""
        return in_weight_format(pad_to_multiple(x, self.cfg.multiple), self.g_a.branch[0].weight)

    @staticmethod
    def _scale_targets(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y_s2 = subsample(y, S2_PHASE)
        return subsample(y_s2, S1_PHASE), y_s2, y

    # ------------------------------------------------------------------ the coding schedule
    def _progressive(self, params: torch.Tensor, step: StepCoder) -> tuple[_Decoded, list[torch.Tensor], Schedule]:
        """Run the 2 + 4 + 8 step schedule; ``step`` decides how each step's values are obtained."""
        b, c2, h, w = params.shape
        # fp32 masks (also under bf16 autocast): a step's values are rounded and summed in fp32
        sched = schedule(c2 // 2, h, w, params.device, torch.promote_types(params.dtype, torch.float32))
        scales_all, means_all = params.chunk(2, 1)

        def to_s1(t):
            return subsample(subsample(t, S2_PHASE), S1_PHASE)

        # s1 step 0 uses the hyper-prior alone.
        context = torch.cat((to_s1(scales_all), to_s1(means_all)), 1)
        scales, means = context.chunk(2, 1)
        mask = sched.steps_s1[0]
        acc = _Decoded(step(0, scales, means, mask, 2), scales * mask, means * mask)
        context = self._context_steps(0, sched.steps_s1[1:], context, acc, step, 2)
        latents = [acc.y_hat]

        for level, (masks, phases, groups) in enumerate(
                ((sched.steps_s2, S1_PHASE, 4), (sched.steps_s3, S2_PHASE, 8)), start=1):
            acc = acc.upsample(phases)
            context = torch.cat([upsample(t, phases) for t in context.chunk(2, 1)], 1)
            if level == 1:
                hyper = torch.cat((sched.s2_hyper(scales_all), sched.s2_hyper(means_all)), 1)
            else:
                hyper = params * torch.cat((sched.not_s2, sched.not_s2), 1)
            context = self.context_net[level - 1](context + hyper)
            context = self._context_steps(level, masks, context, acc, step, groups)
            latents.append(acc.y_hat)
        return acc, latents, sched

    def _context_steps(self, level: int, masks, context: torch.Tensor, acc: _Decoded,
                       step: StepCoder, groups: int) -> torch.Tensor:
        """Steps predicted from already-decoded values, fusing context across steps."""
        attn, prior, adaptors, first_param = (
            (self.attn_s1, self.y_spatial_prior_s1_s2, self.y_spatial_prior_adaptor_list_s1, 0),
            (self.attn_s2, self.y_spatial_prior_s1_s2, self.y_spatial_prior_adaptor_list_s2, 1),
            (self.attn_s3, self.y_spatial_prior_s3, self.y_spatial_prior_adaptor_list_s3, 4),
        )[level]
        # The official model uses adaptor (i - 1) at step i of s2 and s3 (wrapping to the last).
        shift = 0 if level == 0 else 1
        for i, mask in enumerate(masks):
            features = adaptors[(i - shift) % len(adaptors)](torch.cat((context, acc.y_hat), 1))
            params = prior(features, self.adaptive_params_list[first_param + i])
            context = attn(params, context)
            scales, means = params.chunk(2, 1)
            acc.add(step(level, scales, means, mask, groups), scales * mask, means * mask)
        return context

    # ------------------------------------------------------------------ real bitstreams
    def update(self, scale_table: torch.Tensor | None = None) -> None:
        """Build the quantized CDF tables for z (per channel) and y (per scale-table entry)."""
        table = default_scale_table() if scale_table is None else scale_table
        device = self.scales_hyper.device
        cdf_z, len_z, off_z = self.entropy_estimation.quantized_cdfs(self.scales_hyper)
        cdf_y, len_y, off_y = self.entropy_estimation.quantized_cdfs(table)
        for name, value in zip(CDF_BUFFERS, (table, cdf_z, len_z, off_z, cdf_y, len_y, off_y)):
            self.register_buffer(name, value.to(device))

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Accept CDF tables of any size (empty in released checkpoints, filled after update())."""
        for name in CDF_BUFFERS:
            if name in state_dict:
                self.register_buffer(name, torch.empty_like(state_dict[name], device=self.scales_hyper.device))
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def _tables(self) -> tuple[RansTables, RansTables]:
        return (RansTables.from_buffers(self.quantized_cdf_z, self.cdf_length_z, self.offset_z),
                RansTables.from_buffers(self.quantized_cdf_y, self.cdf_length_y, self.offset_y))

    def _y_indexes(self, scales: torch.Tensor) -> torch.Tensor:
        """Nearest scale-table entry in log scale.

        The official coder rounds every scale up to the next entry; rounding to the
        geometric midpoints halves the worst-case mismatch between coded and
        estimated rate (encoder and decoder share this rule, so it is free).
        """
        table = self.scale_table.to(scales)
        return torch.bucketize(scales.contiguous(), torch.sqrt(table[:-1] * table[1:]))

    @staticmethod
    def _combine(t: torch.Tensor, groups: int) -> torch.Tensor:
        """Fold a step's channel groups (disjoint positions) into one dense tensor."""
        return sum(t.chunk(groups, 1))

    @torch.no_grad()
    def compress(self, x: torch.Tensor) -> dict:
        """Encode one image [1,3,H,W] → {"strings": [y_bytes, z_bytes], "shape": (H, W)}.

        ``shape`` is the original image size; the decoder derives the padded latent
        size from it and crops the reconstruction back.
        """
        if x.shape[0] != 1:
            raise ValueError("compress() codes one image at a time (batch size 1)")
        tables_z, tables_y = self._tables()
        y = self.g_a(self._prepare(x))
        z_res = torch.round(self.h_a(y) - self.means_hyper)
        encoder = BufferedRansEncoder()
        encode_symbols(encoder, z_res, self._z_indexes(z_res.shape), tables_z)
        z_string = encoder.flush()

        targets = self._scale_targets(y)
        encoder = BufferedRansEncoder()

        def step(level, scales, means, mask, groups):
            means = means * mask
            q = torch.round((targets[level] - means) * mask)
            encode_symbols(encoder, self._combine(q, groups), self._y_indexes(self._combine(scales * mask, groups)), tables_y)
            return q + means

        self._progressive(self.h_s(z_res + self.means_hyper), step)
        return {"strings": [encoder.flush(), z_string], "shape": tuple(x.shape[-2:])}

    @torch.no_grad()
    def decompress(self, strings: list[bytes], shape: tuple[int, int]) -> dict:
        """Decode what :meth:`compress` produced; returns {"x_hat": [1,3,H,W] in [0,1]}."""
        tables_z, tables_y = self._tables()
        h, w = padded_size(shape, self.cfg.multiple)
        z_shape = (1, self.cfg.N, h // 64, w // 64)
        decoder = RansDecoder()
        decoder.set_stream(strings[1])
        z_res = decode_symbols(decoder, self._z_indexes(z_shape), tables_z)
        decoder = RansDecoder()
        decoder.set_stream(strings[0])

        def step(level, scales, means, mask, groups):
            q = decode_symbols(decoder, self._y_indexes(self._combine(scales * mask, groups)), tables_y)
            return (torch.cat([q] * groups, 1) + means) * mask

        decoded, _, _ = self._progressive(self.h_s(z_res.to(self.scales_hyper) + self.means_hyper), step)
        return {"x_hat": crop_to(self.g_s(decoded.y_hat).clamp_(0, 1), shape)}

    def _z_indexes(self, shape) -> torch.Tensor:
        return torch.arange(shape[1], device=self.scales_hyper.device).view(1, -1, 1, 1).expand(*shape)


# One factory per preset; the literal names are what ``model_names()`` reads without importing this module.
@register_model("HPCM_Base")
def hpcm_base(**overrides) -> HPCM:
    return HPCM(preset("HPCM_Base", **overrides), name="HPCM_Base")


@register_model("HPCM_Large")
def hpcm_large(**overrides) -> HPCM:
    return HPCM(preset("HPCM_Large", **overrides), name="HPCM_Large")


@register_model("HPCM_Tiny")
def hpcm_tiny(**overrides) -> HPCM:
    return HPCM(preset("HPCM_Tiny", **overrides), name="HPCM_Tiny")
