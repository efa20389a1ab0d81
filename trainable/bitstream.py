"""The ``.hpcm`` file: a small self-checking container for one coded image.

Layout (big-endian)::

    magic "HPCM" | version u8 | name_len u8 | model name | height u32 | width u32
    | n_payloads u8 | n x length u32 | crc32 u32 | payloads

The CRC32 covers every byte except itself, so a truncated or corrupted file is
rejected before any entropy decoding (which on garbage could return a silently
wrong image).

The container holds any number of payloads (0-255): the model decides how many it
writes (HPCM 2: y, z; DHIC 5: z, y1..y4) and the codec checks the count against the
model that decodes the file. The layout has not changed since version 1, so every
file written so far stays readable; other versions are refused with a clear error.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from .errors import BitstreamError

MAGIC = b"HPCM"
VERSION = 1


@dataclass(frozen=True)
class CodedImage:
    model_name: str
    size: tuple[int, int]
    payloads: list[bytes]

    def to_bytes(self) -> bytes:
        name = self.model_name.encode()
        if not 0 < len(name) <= 255:
            raise ValueError(f"model name must be 1-255 bytes of UTF-8, got {len(name)}")
        if len(self.payloads) > 255:
            raise ValueError(f"at most 255 payloads fit the header, got {len(self.payloads)}")
        if any(len(p) >= 2**32 for p in self.payloads) or not all(0 < s < 2**32 for s in self.size):
            raise ValueError("payload lengths and image sides must fit in 32 bits (sides > 0)")
        head = MAGIC + struct.pack(">BB", VERSION, len(name)) + name + struct.pack(">II", *self.size)
        head += struct.pack(">B", len(self.payloads)) + b"".join(struct.pack(">I", len(p)) for p in self.payloads)
        body = b"".join(self.payloads)
        return head + struct.pack(">I", zlib.crc32(head + body)) + body

    @classmethod
    def from_bytes(cls, data: bytes) -> "CodedImage":
        reader = _Reader(data)
        if reader.take(4, "magic") != MAGIC:
            raise BitstreamError("not an HPCM bitstream (bad magic bytes)")
        version, name_len = reader.unpack(">BB", "header")
        if version != VERSION:
            raise BitstreamError(f"unsupported bitstream format version {version} (this tool reads {VERSION})")
        name = reader.take(name_len, "model name")
        height, width = reader.unpack(">II", "image size")
        (count,) = reader.unpack(">B", "payload count")
        lengths = [reader.unpack(">I", "payload lengths")[0] for _ in range(count)]
        head_end = reader.pos
        (crc,) = reader.unpack(">I", "checksum")
        body_len = sum(lengths)
        if len(data) - reader.pos != body_len:
            raise BitstreamError(f"truncated or padded bitstream: payload is {len(data) - reader.pos} bytes, header says {body_len}")
        body = data[reader.pos:]
        if zlib.crc32(data[:head_end] + body) != crc:
            raise BitstreamError("bitstream is corrupted (CRC32 mismatch)")
        payloads, start = [], 0
        for n in lengths:
            payloads.append(body[start:start + n])
            start += n
        try:
            model_name = name.decode()
        except UnicodeDecodeError:
            raise BitstreamError("bitstream header has an invalid model name") from None
        if height == 0 or width == 0:
            raise BitstreamError("bitstream header has an empty image size")
        return cls(model_name, (height, width), payloads)


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise BitstreamError(f"truncated bitstream: file ends inside the {what}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str) -> tuple:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))
