"""Encode/decode images to ``.hpcm`` files with real rANS bitstreams.

    python -m trainable.codec encode IMG -o FILE --model HPCM_Base --checkpoint CKPT
    python -m trainable.codec decode FILE -o OUT.png --checkpoint CKPT
    python -m trainable.codec demo [--model HPCM_Tiny] [--checkpoint CKPT]

Any registered model works (``trainable.models.model_names()``); the file records which.
CKPT is a plain state_dict (the official releases) or one of our training checkpoints.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .bitstream import CodedImage
from .checkpoint import load_weights
from .cli import OneLineParser, run_cli
from .data import to_rgb8
from .errors import BitstreamError, InputError
from .models import CompressionModel, create_model, model_names
from .paths import check_device, check_output_file


def load_image(path: str | Path) -> torch.Tensor:
    """Image file → [1,3,H,W] float tensor in [0,1] (8-bit RGB as training reads it: ``to_rgb8``)."""
    try:
        with Image.open(path) as img:
            array = np.asarray(to_rgb8(img), dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise InputError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"corrupt or unsupported image {path}: {exc}") from None
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def save_image(x: torch.Tensor, path: str | Path) -> None:
    array = (x.squeeze(0).clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0).round().astype(np.uint8)
    Image.fromarray(array).save(path)


def prepare_model(name: str, checkpoint: str | None, device: str = "cpu") -> CompressionModel:
    """Model in eval mode with weights loaded (if given) and entropy tables built."""
    model = create_model(name)
    if checkpoint:
        load_weights(model, checkpoint)
    model = model.to(device).eval()
    model.update()
    return model


def _device(model: CompressionModel) -> torch.device:
    return next(model.parameters()).device


def encode(model: CompressionModel, x: torch.Tensor) -> CodedImage:
    out = model.compress(x.to(_device(model)))
    return CodedImage(model.name, tuple(out["shape"]), list(out["strings"]))


def decode(model: CompressionModel, coded: CodedImage) -> torch.Tensor:
    """Refuses a file made by another model, or one whose payload count the model does not write."""
    if coded.model_name != model.name:
        raise BitstreamError(f"bitstream was made by {coded.model_name}, not {model.name}")
    expected = getattr(model, "num_payloads", None)
    if expected is not None and len(coded.payloads) != expected:
        raise BitstreamError(f"bitstream has {len(coded.payloads)} payloads, {model.name} writes {expected}")
    return model.decompress(coded.payloads, coded.size)["x_hat"]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.cpu() - b.cpu()) ** 2).item()
    return float("inf") if mse == 0 else -10 * math.log10(mse)


def _cmd_encode(a) -> None:
    x = load_image(a.image)
    coded = encode(prepare_model(a.model, a.checkpoint, a.device), x)
    data = coded.to_bytes()
    Path(a.output).write_bytes(data)
    print(f"{a.output}: {len(data)} bytes, {8 * len(data) / (x.shape[2] * x.shape[3]):.4f} bpp")


def _cmd_decode(a) -> None:
    try:
        data = Path(a.bitstream).read_bytes()
    except FileNotFoundError:
        raise InputError(f"bitstream not found: {a.bitstream}") from None
    coded = CodedImage.from_bytes(data)
    save_image(decode(prepare_model(coded.model_name, a.checkpoint, a.device), coded), a.output)
    print(f"{a.output}: {coded.size[1]}x{coded.size[0]} decoded with {coded.model_name}")


def _cmd_demo(a) -> None:
    from .data import sample_dataset_dir

    model = prepare_model(a.model, a.checkpoint, a.device)
    files = sorted(p for p in sample_dataset_dir("val").iterdir() if p.suffix == ".png")
    print(f"{'image':<24}{'size':>12}{'bpp':>9}{'est.bpp':>9}{'PSNR':>8}{'enc s':>7}{'dec s':>7}")
    for path in files:
        x = load_image(path).to(a.device)
        t0 = time.perf_counter()
        data = encode(model, x).to_bytes()
        t1 = time.perf_counter()
        x_hat = decode(model, CodedImage.from_bytes(data))
        t2 = time.perf_counter()
        with torch.no_grad():
            est = model(x)["likelihoods"]
        pixels = x.shape[2] * x.shape[3]
        est_bpp = sum(-torch.log2(l).sum().item() for l in est.values()) / pixels
        print(f"{path.name:<24}{x.shape[3]:>6}x{x.shape[2]:<5}{8 * len(data) / pixels:>9.4f}{est_bpp:>9.4f}"
              f"{psnr(x, x_hat):>8.2f}{t1 - t0:>7.2f}{t2 - t1:>7.2f}")
    if not a.checkpoint:
        print("(untrained weights: the numbers show the codec path works, not RD performance)")


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m trainable.codec", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    enc = sub.add_parser("encode", help="image → .hpcm bitstream")
    enc.add_argument("image")
    enc.add_argument("-o", "--output", required=True)
    enc.add_argument("--model", default="HPCM_Base", choices=model_names(), help="default: %(default)s")
    dec = sub.add_parser("decode", help=".hpcm bitstream → PNG (the model name is read from the file)")
    dec.add_argument("bitstream")
    dec.add_argument("-o", "--output", required=True)
    demo = sub.add_parser("demo", help="code the built-in sample validation images")
    demo.add_argument("--model", default="HPCM_Tiny", choices=model_names())
    for p, required in ((enc, True), (dec, True), (demo, False)):
        p.add_argument("--checkpoint", required=required, help="plain state_dict or training checkpoint")
        p.add_argument("--device", default="cpu", help="cpu | cuda (default: %(default)s)")
    a = parser.parse_args(argv)
    check_device(a.device)
    if getattr(a, "output", None) is not None:
        check_output_file(a.output, "-o/--output")
    {"encode": _cmd_encode, "decode": _cmd_decode, "demo": _cmd_demo}[a.command](a)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
