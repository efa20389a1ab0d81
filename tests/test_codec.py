"""Real rANS bitstreams: round trip, rate fidelity, file format and its failure modes."""
import subprocess
import sys

import pytest
import torch

from trainable.bitstream import CodedImage
from trainable.checkpoint import save_atomic
from trainable.codec import decode, encode, load_image, save_image
from trainable.errors import BitstreamError

from .helpers import fitted_tiny_model, image, tiny_model


@pytest.fixture(scope="module")
def codec_model():
    return fitted_tiny_model()


def _estimated_bpp(model, x):
    with torch.no_grad():
        lik = model(x)["likelihoods"]
    return sum(-torch.log2(l).sum().item() for l in lik.values()) / (x.shape[2] * x.shape[3])


@pytest.mark.parametrize("h,w", [(256, 256), (300, 451), (130, 97)])
def test_round_trip_equals_eval_forward(codec_model, h, w):
    x = image(h, w)
    x_dec = decode(codec_model, CodedImage.from_bytes(encode(codec_model, x).to_bytes()))
    with torch.no_grad():
        x_fwd = codec_model(x)["x_hat"].clamp(0, 1)
    assert x_dec.shape == x.shape
    assert (x_dec - x_fwd).abs().max().item() <= 1e-4


@pytest.mark.parametrize("seed", [0, 7])
def test_real_rate_within_two_percent_of_estimate(codec_model, seed):
    x = image(256, 256, seed=seed)
    real = 8 * sum(len(p) for p in encode(codec_model, x).payloads) / (256 * 256)
    est = _estimated_bpp(codec_model, x)
    assert est > 0.1, "test model should code at a realistic rate"
    assert abs(real - est) / est < 0.02


def test_values_outside_the_cdf_tables_still_round_trip(codec_model):
    """Latents far in the tails use compressai's escape (bypass) coding."""
    model = tiny_model(stretch=400.0).eval()
    model.update()
    x = image(256, 256, seed=3)
    x_dec = decode(model, encode(model, x))
    with torch.no_grad():
        assert (x_dec - model(x)["x_hat"].clamp(0, 1)).abs().max().item() <= 1e-4


def test_compress_without_update_is_a_clear_error():
    with pytest.raises(RuntimeError, match="update"):
        tiny_model().eval().compress(image(256, 256))


def _file(codec_model):
    return encode(codec_model, image(256, 256)).to_bytes()


def test_bitstream_header_fields(codec_model):
    coded = CodedImage.from_bytes(_file(codec_model))
    assert coded.model_name == "HPCM_Tiny" and coded.size == (256, 256) and len(coded.payloads) == 2


@pytest.mark.parametrize("damage,message", [
    (lambda b: b[: len(b) // 2], "truncated"),
    (lambda b: b[:10], "truncated"),
    (lambda b: b[:-1] + bytes([b[-1] ^ 0xFF]), "corrupted"),
    (lambda b: b[:30] + bytes([b[30] ^ 0x01]) + b[31:], "corrupted|truncated"),
    (lambda b: b"JPEG" + b[4:], "not an HPCM bitstream"),
    (lambda b: b + b"extra", "truncated or padded"),
    (lambda b: b"", "truncated"),
])
def test_damaged_bitstreams_are_rejected_before_decoding(codec_model, damage, message):
    with pytest.raises(BitstreamError, match=message):
        CodedImage.from_bytes(damage(_file(codec_model)))


def test_container_holds_any_number_of_payloads():
    for payloads in ([], [b"z"], [b"", b"ab", b"c" * 300, b"d", b"e"]):
        coded = CodedImage("DHIC_Tiny", (70, 90), payloads)
        assert CodedImage.from_bytes(coded.to_bytes()) == coded
    with pytest.raises(ValueError, match="at most 255 payloads"):
        CodedImage("DHIC_Tiny", (70, 90), [b""] * 256).to_bytes()


def test_version_1_files_stay_readable_and_other_versions_are_refused():
    """A file laid out by hand as documented for version 1 (the layout has not changed)."""
    import struct
    import zlib

    head = b"HPCM" + struct.pack(">BB", 1, 9) + b"HPCM_Tiny" + struct.pack(">IIB", 20, 30, 2) + struct.pack(">II", 3, 1)
    body = b"abcd"
    data = head + struct.pack(">I", zlib.crc32(head + body)) + body
    assert CodedImage.from_bytes(data) == CodedImage("HPCM_Tiny", (20, 30), [b"abc", b"d"])
    with pytest.raises(BitstreamError, match="unsupported bitstream format version 2"):
        CodedImage.from_bytes(data[:4] + b"\x02" + data[5:])


def test_payload_count_and_model_are_checked_against_the_decoding_model():
    model = tiny_model()
    with pytest.raises(BitstreamError, match="bitstream has 5 payloads, HPCM_Tiny writes 2"):
        decode(model, CodedImage("HPCM_Tiny", (64, 64), [b"x"] * 5))
    with pytest.raises(BitstreamError, match="made by DHIC_Tiny, not HPCM_Tiny"):
        decode(model, CodedImage("DHIC_Tiny", (64, 64), [b"x"] * 5))


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "trainable.codec", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_codec_cli_round_trip_and_errors(tmp_path, codec_model):
    ckpt = tmp_path / "plain.pth"
    save_atomic(codec_model.state_dict(), ckpt)        # a plain state_dict, like the official releases
    ours = tmp_path / "train.pth.tar"
    save_atomic({"model": codec_model.state_dict(), "epoch": 3}, ours)   # our training checkpoint
    src = tmp_path / "in.png"
    save_image(image(200, 300), src)
    bits, out = tmp_path / "in.hpcm", tmp_path / "out.png"
    root = str(__import__("pathlib").Path(__file__).resolve().parents[1])

    r = _cli("encode", str(src), "-o", str(bits), "--model", "HPCM_Tiny", "--checkpoint", str(ckpt), cwd=root)
    assert r.returncode == 0, r.stderr
    r = _cli("decode", str(bits), "-o", str(out), "--checkpoint", str(ours), cwd=root)
    assert r.returncode == 0, r.stderr
    decoded = load_image(out)
    assert decoded.shape == (1, 3, 200, 300)
    with torch.no_grad():
        expected = codec_model(load_image(src))["x_hat"].clamp(0, 1)
    assert (decoded - expected).abs().max().item() <= 1 / 255 + 1e-6   # PNG quantisation only

    bits.write_bytes(bits.read_bytes()[:-7])
    r = _cli("decode", str(bits), "-o", str(out), "--checkpoint", str(ckpt), cwd=root)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "truncated" in r.stderr

    bad_ckpt = tmp_path / "bad.pth"
    bad_ckpt.write_bytes(ckpt.read_bytes()[:1000])
    r = _cli("encode", str(src), "-o", str(bits), "--model", "HPCM_Tiny", "--checkpoint", str(bad_ckpt), cwd=root)
    assert r.returncode == 2 and "corrupt or unreadable checkpoint" in r.stderr and r.stderr.count("\n") == 1

    r = _cli("encode", str(src), "-o", str(bits), "--model", "HPCM_Base", "--checkpoint", str(ckpt), cwd=root)
    assert r.returncode == 2 and "does not fit model HPCM_Base" in r.stderr

    r = _cli("encode", str(src), "-o", str(bits), "--model", "HPCM_Huge", "--checkpoint", str(ckpt), cwd=root)
    assert r.returncode == 2 and "invalid choice: 'HPCM_Huge'" in r.stderr and "DHIC_Tiny" in r.stderr

    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"\x89PNG not really")
    r = _cli("encode", str(garbage), "-o", str(bits), "--model", "HPCM_Tiny", "--checkpoint", str(ckpt), cwd=root)
    assert r.returncode == 2 and "garbage.png" in r.stderr
