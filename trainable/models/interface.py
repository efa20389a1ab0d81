"""What the trainer, the regularizers and the codec may rely on in a model; nothing more.

A model is a ``torch.nn.Module`` (parameters, ``state_dict``, ``train()``/``eval()``,
``to()``) that also satisfies :class:`CompressionModel`. Anything else a model has
(HPCM's ``cfg``, DHIC's levels) is its own business.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch


@runtime_checkable
class CompressionModel(Protocol):
    """The model interface (CompressAI's conventions plus scale latents).

    Attributes:
        name: the registry name (set by ``create_model``); written into ``.hpcm`` files.
        num_scales: number of scale latents ``forward`` returns when asked.
        scale_channels: channels of each scale latent, coarse to fine.
        coding_multiple: image sides are padded to a multiple of this inside the model;
            ``forward``, ``compress`` and ``decompress`` accept any image size.
        num_payloads (optional): how many byte strings ``compress`` writes; when a model
            states it, the codec refuses files with another count before decoding.
        phase2_latents (optional): the latents Phase 2 and the predictability measure read
            by default, ``"new"`` (absent) or ``"full"`` (see :func:`carried_latents`).
    """

    name: str
    num_scales: int
    scale_channels: tuple[int, ...]
    coding_multiple: int

    def forward(self, x: "torch.Tensor", return_scale_latents: bool = False) -> dict[str, Any]:
        """``{"x_hat": [B,3,H,W], "likelihoods": {name: tensor}}``; with ``return_scale_latents``
        also ``"scale_latents"``: decoded latents coarse to fine, each [B, C_i, H_i, W_i] with
        H_{i+1} = 2 H_i (straight-through gradients in training), and optionally
        ``"scale_new_masks"``: per scale, broadcastable, 1 where a position is first coded
        at that scale (absent: every position is new), and optionally ``"scale_residuals"``:
        per scale, what the scale codes beyond its prior's prediction (DHIC: round(y - mu)),
        shaped like ``scale_latents``. See :func:`carried_latents`."""

    def update(self) -> Any:
        """Build the entropy coder's tables; needed before ``compress``/``decompress``."""

    def compress(self, x: "torch.Tensor") -> dict[str, Any]:
        """One image [1,3,H,W] -> ``{"strings": list[bytes] (any count), "shape": (H, W)}``."""

    def decompress(self, strings: Sequence[bytes], shape: tuple[int, int]) -> dict[str, Any]:
        """What ``compress`` wrote -> ``{"x_hat": [1,3,H,W] in [0, 1]}``, equal to the eval forward."""


def carried_latents(out: dict[str, Any], scale_latents: str) -> tuple[list, list | None]:
    """(latents, new-position masks) that Phase 2 and the predictability measure compare.

    ``"new"``: what each scale carries that coarser ones did not decide: the residuals w.r.t.
    the prior's mean when the model gives them (DHIC), else the latents with their
    new-position masks (HPCM's nested scales). ``"full"``: the decoded latents as they are.
    """
    if scale_latents == "new" and "scale_residuals" in out:
        return list(out["scale_residuals"]), None
    return list(out["scale_latents"]), out.get("scale_new_masks")


def default_latents(model: Any, choice: str = "model") -> str:
    """The ``scale_latents`` to read: ``choice``, or with ``"model"`` what the model declares."""
    return getattr(model, "phase2_latents", "new") if choice == "model" else choice


def check_model(model: Any) -> None:
    """Raise ``TypeError`` naming what ``model`` lacks of the interface."""
    import torch

    name = getattr(model, "name", type(model).__name__)
    problems = []
    if not isinstance(model, torch.nn.Module):
        problems.append("is not a torch.nn.Module")
    missing = [a for a in ("name", "num_scales", "scale_channels", "coding_multiple", "forward", "update",
                           "compress", "decompress") if not hasattr(model, a)]
    if missing:
        problems.append(f"lacks {', '.join(missing)}")
    else:
        channels = model.scale_channels
        if not (isinstance(model.num_scales, int) and model.num_scales >= 1):
            problems.append(f"num_scales must be an int >= 1, got {model.num_scales!r}")
        elif not (isinstance(channels, tuple) and len(channels) == model.num_scales
                  and all(isinstance(c, int) and c > 0 for c in channels)):
            problems.append(f"scale_channels must be a tuple of {model.num_scales} positive ints, got {channels!r}")
        if not (isinstance(model.coding_multiple, int) and model.coding_multiple >= 1):
            problems.append(f"coding_multiple must be an int >= 1, got {model.coding_multiple!r}")
    if problems:
        raise TypeError(f"model {name} does not implement CompressionModel: {'; '.join(problems)}")
