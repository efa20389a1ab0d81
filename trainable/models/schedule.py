"""HPCM's hierarchical coding schedule: which latent positions each step codes.

The latent y [B,M,H,W] is coded in three scales. s2 takes, for each of 8 channel
groups, one of the four 2x2 polyphase components of y; s1 takes one 2x2 component
of s2 for each of 4 channel groups. So s1 ⊂ s2 ⊂ s3 (nested scales), and each
scale is coded in steps: s1 in 2 (checkerboard), s2 in 4 (the first is s1), s3 in 8
(the first two are s2). Positions are written here as cells of a periodic tile
(row, col) and rotate with the channel group, as in the official model.

Everything is precomputed once per latent shape (``Schedule``), so a training step
does no mask construction and no Python loops over positions.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

Cell = tuple[int, int]

# s2: 2x2 polyphase component taken from y, per 8-group of channels.
S2_PHASE: tuple[Cell, ...] = ((0, 0), (1, 1), (0, 1), (1, 0)) * 2
# s1: 2x2 polyphase component taken from s2, per 4-group of channels.
S1_PHASE: tuple[Cell, ...] = ((0, 0), (0, 1), (1, 0), (1, 1))
# s1 steps: checkerboard halves per 2-group of channels.
CHECKER: tuple[tuple[Cell, ...], tuple[Cell, ...]] = (((0, 0), (1, 1)), ((0, 1), (1, 0)))
# s2 steps 1..3: 4-group k codes the 2x2 phase k XOR code (step 0, code 0, is s1).
S2_STEP_XOR: tuple[int, ...] = (3, 2, 1)
# s3: eight 2-cell patterns of a 4x4 tile, and which pattern each 8-group codes per step
# (steps 0 and 1 are the s2 positions).
S3_PATTERNS: tuple[tuple[Cell, Cell], ...] = (
    ((0, 0), (2, 2)), ((0, 2), (2, 0)), ((1, 1), (3, 3)), ((1, 3), (3, 1)),
    ((0, 1), (2, 3)), ((0, 3), (2, 1)), ((1, 0), (3, 2)), ((1, 2), (3, 0)),
)
S3_STEP_PATTERN: tuple[tuple[int, ...], ...] = (
    (0, 2, 4, 6, 1, 3, 5, 7), (1, 3, 5, 7, 0, 2, 4, 6), (2, 4, 6, 0, 3, 5, 7, 1), (3, 5, 7, 1, 2, 4, 6, 0),
    (4, 6, 0, 2, 5, 7, 1, 3), (5, 7, 1, 3, 4, 6, 0, 2), (6, 0, 2, 4, 7, 1, 3, 5), (7, 1, 3, 5, 6, 0, 2, 4),
)
# The official model fills the s2 hyper-prior at the 3 non-s1 positions of each 2x2
# cell from these y positions (period 4) of each 8-group, paired in row-major order.
# For half of the groups that pairing is not co-located; it is kept as is so that
# released weights give the released results.
S2_HYPER_EXCLUDED: tuple[Cell, ...] = ((0, 0), (1, 1), (0, 1), (1, 0), (0, 2), (1, 3), (0, 3), (1, 2))


def _tile(h: int, w: int, period: int, cells) -> torch.Tensor:
    """Bool [h,w] mask: True where (row % period, col % period) is one of ``cells``."""
    rows = torch.arange(h).view(-1, 1) % period
    cols = torch.arange(w).view(1, -1) % period
    out = torch.zeros(h, w, dtype=torch.bool)
    for r, c in cells:
        out |= (rows == r) & (cols == c)
    return out


def _grouped(channels: int, per_group: list[torch.Tensor]) -> torch.Tensor:
    """Stack per-group [h,w] masks into a [C,h,w] mask (channels split evenly)."""
    size = channels // len(per_group)
    return torch.cat([m.expand(size, *m.shape) for m in per_group])


def subsample(t: torch.Tensor, phases: tuple[Cell, ...]) -> torch.Tensor:
    """Take polyphase component ``phases[g]`` of channel group g: [B,C,H,W] -> [B,C,H/2,W/2]."""
    return torch.cat([g[:, :, r::2, c::2] for g, (r, c) in zip(t.chunk(len(phases), 1), phases)], 1)


def upsample(t: torch.Tensor, phases: tuple[Cell, ...]) -> torch.Tensor:
    """Inverse of :func:`subsample`: place values back, zeros elsewhere."""
    b, c, h, w = t.shape
    out = t.new_zeros(b, c, 2 * h, 2 * w)
    size = c // len(phases)
    for g, (r, col) in enumerate(phases):
        out[:, g * size:(g + 1) * size, r::2, col::2] = t[:, g * size:(g + 1) * size]
    return out


@dataclass(frozen=True)
class Schedule:
    """Step masks (float, [1,C,h,w]) of each scale and the hyper-prior re-indexing."""

    steps_s1: tuple[torch.Tensor, ...]
    steps_s2: tuple[torch.Tensor, ...]
    steps_s3: tuple[torch.Tensor, ...]
    not_s2: torch.Tensor          # [1,C,H,W]: positions first coded at s3
    not_s1: torch.Tensor          # [1,C,H/2,W/2]: positions first coded at s2
    s2_hyper_src: torch.Tensor    # flat indices into one sample of [C,H,W]
    s2_hyper_dst: torch.Tensor    # flat indices into one sample of [C,H/2,W/2]

    @property
    def new_masks(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Positions first coded at s1, s2, s3, each at its scale's resolution."""
        return torch.ones_like(self.steps_s1[0]), self.not_s1, self.not_s2

    def s2_hyper(self, params: torch.Tensor) -> torch.Tensor:
        """Hyper-prior parameters for the positions s2 adds, on the s2 grid."""
        b, c, h, w = params.shape
        out = params.new_zeros(b, c * (h // 2) * (w // 2))
        out[:, self.s2_hyper_dst] = params.reshape(b, -1)[:, self.s2_hyper_src]
        return out.view(b, c, h // 2, w // 2)


@torch.compiler.disable
@lru_cache(maxsize=16)
def schedule(channels: int, height: int, width: int, device: torch.device, dtype: torch.dtype) -> Schedule:
    """Build (once per latent shape) the masks of the 2 + 4 + 8 step schedule.

    Opaque to torch.compile: traced, its ``nonzero`` broke the graph 13 times per forward
    and the masks were rebuilt every step; as one cached call it is one break, and the
    compiled graphs see the precomputed masks and index tensors as inputs."""
    C, H, W = channels, height, width
    h2, w2, h1, w1 = H // 2, W // 2, H // 4, W // 4

    def as_float(mask: torch.Tensor) -> torch.Tensor:
        return mask.unsqueeze(0).to(device=device, dtype=dtype)

    checker = [_tile(h1, w1, 2, cells) for cells in CHECKER]
    steps_s1 = (_grouped(C, checker), _grouped(C, checker[::-1]))
    phase2 = [_tile(h2, w2, 2, [cell]) for cell in S1_PHASE]
    steps_s2 = tuple(_grouped(C, [phase2[k ^ code] for k in range(4)]) for code in S2_STEP_XOR)
    patterns = [_tile(H, W, 4, cells) for cells in S3_PATTERNS]
    steps_s3 = tuple(_grouped(C, [patterns[p] for p in order]) for order in S3_STEP_PATTERN[2:])

    s1_in_s2 = _grouped(C, phase2)
    s2_in_y = _grouped(C, [_tile(H, W, 2, [cell]) for cell in S2_PHASE])
    excluded = _grouped(C, [_tile(H, W, 4, [cell]) for cell in S2_HYPER_EXCLUDED])
    src = (s2_in_y & ~excluded).flatten().nonzero().squeeze(1)
    dst = (~s1_in_s2).flatten().nonzero().squeeze(1)
    return Schedule(
        steps_s1=tuple(as_float(m) for m in steps_s1),
        steps_s2=tuple(as_float(m) for m in steps_s2),
        steps_s3=tuple(as_float(m) for m in steps_s3),
        not_s2=as_float(~s2_in_y),
        not_s1=as_float(~s1_in_s2),
        s2_hyper_src=src.to(device),
        s2_hyper_dst=dst.to(device),
    )
