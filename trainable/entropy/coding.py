"""Thin layer over compressai's rANS coder: tables in, bytes out."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from compressai.ans import BufferedRansEncoder, RansDecoder


@dataclass(frozen=True)
class RansTables:
    """Quantized CDF tables converted once to the Python lists the coder takes."""

    cdfs: list[list[int]]
    lengths: list[int]
    offsets: list[int]

    @classmethod
    def from_buffers(cls, cdf: torch.Tensor, lengths: torch.Tensor, offsets: torch.Tensor) -> "RansTables":
        if cdf.numel() == 0:
            raise RuntimeError("entropy tables are empty: call model.update() before coding")
        return cls(cdf.int().tolist(), lengths.int().reshape(-1).tolist(), offsets.int().reshape(-1).tolist())


def encode_symbols(encoder: BufferedRansEncoder, symbols: torch.Tensor, indexes: torch.Tensor,
                   tables: RansTables) -> None:
    """Append integer ``symbols`` coded with table ``indexes[i]`` each."""
    encoder.encode_with_indexes(symbols.reshape(-1).int().tolist(), indexes.reshape(-1).int().tolist(),
                                tables.cdfs, tables.lengths, tables.offsets)


def decode_symbols(decoder: RansDecoder, indexes: torch.Tensor, tables: RansTables) -> torch.Tensor:
    """Decode one symbol per entry of ``indexes``; returns floats shaped like ``indexes``."""
    values = decoder.decode_stream(indexes.reshape(-1).int().tolist(), tables.cdfs, tables.lengths, tables.offsets)
    return torch.tensor(values, dtype=torch.float32, device=indexes.device).view(indexes.shape)
