"""``thinker prepare-input``: a PNG or WAV written here with the standard library and numpy
becomes exactly what the model's input takes (dtype, shape, exponent), and the model runs on
the file."""

import math
import os
import struct
import subprocess
import sys
import wave
import zlib

import numpy as np
import onnx
import pytest

from onnx_build import model, node, value_info
from packing_models import small_cnn
from thinker import qmath
from thinker.packer import Packer, PackOptions
from thinker.tools import prepare_input as prep
from thinker.tools.media import read_image, read_wav

THINKER = os.path.join(os.path.dirname(sys.executable), "thinker")


def cli(*args, cwd):
    return subprocess.run([THINKER, "prepare-input", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd)


# ---- files written the way other tools write them ----------------------------------------------


def png_bytes(pixels: np.ndarray) -> bytes:
    """An 8-bit PNG whose rows cycle through all five filter types (as encoders choose them),
    written with zlib and struct only."""
    arr = np.asarray(pixels, np.uint8)
    arr = arr[:, :, None] if arr.ndim == 2 else arr
    h, w, c = arr.shape
    color = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    rows, prev = [], np.zeros(w * c, np.int32)
    for y in range(h):
        cur = arr[y].reshape(-1).astype(np.int32)
        kind = y % 5
        left = np.concatenate([np.zeros(c, np.int32), cur[:-c]])
        upleft = np.concatenate([np.zeros(c, np.int32), prev[:-c]])
        if kind == 0:
            enc = cur
        elif kind == 1:
            enc = cur - left
        elif kind == 2:
            enc = cur - prev
        elif kind == 3:
            enc = cur - (left + prev) // 2
        else:
            p = left + prev - upleft
            pa, pb, pc = np.abs(p - left), np.abs(p - prev), np.abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
            enc = cur - pred
        rows.append(bytes([kind]) + (enc & 0xFF).astype(np.uint8).tobytes())
        prev = cur

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + \
            struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0,
                                                                0, 0))
            + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))


def write_wav(path, samples: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


def write_float_wav(path, samples: np.ndarray, rate: int) -> None:
    body = samples.astype("<f4").tobytes()
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(body)) + b"WAVE" + b"fmt " +
                     struct.pack("<IHHIIHH", 16, 3, 1, rate, rate * 4, 4, 32) + b"data" +
                     struct.pack("<I", len(body)) + body)


def int_input_model(shape, exponent: int) -> onnx.ModelProto:
    """An int8 input of ``shape`` at ``exponent`` (Relu: any layout)."""
    m = model([node("Relu", ["x"], ["y"], name="relu")], [value_info("x", np.int8, shape)],
              ["y"])
    entry = m.metadata_props.add()
    entry.key, entry.value = "thinker:exponent:x", str(exponent)
    return m


def packed_cnn(tmp_path) -> str:
    onnx.save(small_cnn(), tmp_path / "cnn.onnx")
    result = Packer(PackOptions(graph_path=str(tmp_path / "cnn.onnx"),
                                workspace=str(tmp_path / "ws"))).run()
    (tmp_path / "cnn.bin").write_bytes(result.model_bin)
    return "cnn.bin"


RNG = np.random.default_rng(0)


# ---- images -----------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png_decoding_with_every_filter(tmp_path, channels):
    pixels = RNG.integers(0, 256, (11, 7, channels)).astype(np.uint8)
    (tmp_path / "a.png").write_bytes(png_bytes(pixels))
    got, peak = read_image(str(tmp_path / "a.png"))
    assert peak == 255 and np.array_equal(got, pixels)


def test_an_image_becomes_the_models_int8_input(tmp_path):
    model_bin = packed_cnn(tmp_path)  # input int8 [1, 3, 16, 16], exponent 5
    pixels = RNG.integers(0, 256, (16, 16, 3)).astype(np.uint8)
    (tmp_path / "cat.png").write_bytes(png_bytes(pixels))
    r = cli("cat.png", "--model", model_bin, "-o", "input.bin", "--mean", "0.5,0.4,0.3",
            "--std", "0.25", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "input '" in r.stdout and "int8[1, 3, 16, 16] (exponent 5" in r.stdout
    got = np.fromfile(tmp_path / "input.bin", np.int8).reshape(1, 3, 16, 16)
    floats = (pixels / 255.0 - np.array([0.5, 0.4, 0.3])) / 0.25
    expected = qmath.quantize(floats.transpose(2, 0, 1)[None], 5, 8)
    assert np.array_equal(got, expected)
    # the model runs on it
    r = subprocess.run([THINKER, "run", model_bin, "input.bin", "out.bin"], capture_output=True,
                       text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_resize_is_bilinear_with_half_pixel_centres(tmp_path):
    torch = pytest.importorskip("torch")
    img = RNG.random((20, 24, 3))
    got = prep.resize(img, 16, 16, "bilinear", "x")
    ref = torch.nn.functional.interpolate(torch.tensor(img).permute(2, 0, 1)[None], (16, 16),
                                          mode="bilinear", align_corners=False)
    assert np.allclose(got, ref[0].permute(1, 2, 0).numpy(), atol=1e-12)
    near = prep.resize(img, 10, 12, "nearest", "x")
    assert np.array_equal(near, img[::2, ::2])


def test_gray_model_and_nhwc_layout(tmp_path):
    rgb = RNG.integers(0, 256, (8, 8, 3)).astype(np.uint8)
    (tmp_path / "rgb.png").write_bytes(png_bytes(rgb))
    onnx.save(int_input_model([1, 1, 8, 8], 6), tmp_path / "gray.onnx")
    r = cli("rgb.png", "--model", "gray.onnx", "-o", "g.npy", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    gray = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255.0
    assert np.array_equal(np.load(tmp_path / "g.npy"), qmath.quantize(gray[None, None], 6, 8))
    onnx.save(int_input_model([1, 8, 8, 3], 6), tmp_path / "nhwc.onnx")
    r = cli("rgb.png", "--model", "nhwc.onnx", "-o", "h.npy", "--bgr", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    expected = qmath.quantize((rgb[:, :, ::-1] / 255.0)[None], 6, 8)
    assert np.array_equal(np.load(tmp_path / "h.npy"), expected)


def test_several_images_make_a_batch_in_npy_only(tmp_path):
    model_bin = packed_cnn(tmp_path)
    for name in ("a", "b"):
        (tmp_path / f"{name}.png").write_bytes(png_bytes(RNG.integers(0, 256, (20, 20, 3))))
    r = cli("a.png", "b.png", "--model", model_bin, "-o", "two.npy", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "two.npy").shape == (2, 3, 16, 16)
    r = cli("a.png", "b.png", "--model", model_bin, "-o", "two.bin", cwd=tmp_path)
    assert r.returncode == 1 and "write .npy" in r.stderr
    assert not (tmp_path / "two.bin").exists()


def test_formats_without_a_reader_name_pillow(tmp_path, monkeypatch):
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64)
    model_bin = packed_cnn(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "nopil"))
    (tmp_path / "nopil").mkdir()
    (tmp_path / "nopil" / "PIL.py").write_text("raise ImportError('no Pillow here')\n")
    r = subprocess.run([THINKER, "prepare-input", "photo.jpg", "--model", model_bin, "-o",
                        "x.bin"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.returncode == 1
    assert "pip install 'thinker[image]'" in r.stderr and "Traceback" not in r.stderr


def test_saturation_is_reported(tmp_path):
    model_bin = packed_cnn(tmp_path)  # exponent 5: range [-4, 3.97]
    (tmp_path / "a.png").write_bytes(png_bytes(np.full((16, 16, 3), 255, np.uint8)))
    r = cli("a.png", "--model", model_bin, "-o", "x.bin", "--scale", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "768 of 768 values saturated" in r.stdout


# ---- audio ------------------------------------------------------------------------------------


def test_wav_reading_pcm_and_float(tmp_path):
    t = np.arange(800) / 8000.0
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    write_wav(tmp_path / "a.wav", tone, 8000)
    x, rate = read_wav(str(tmp_path / "a.wav"))
    assert rate == 8000 and np.allclose(x, tone, atol=2 / 32768)  # int16 / 32768
    write_float_wav(tmp_path / "f.wav", tone, 8000)
    x, rate = read_wav(str(tmp_path / "f.wav"))
    assert np.allclose(x, tone.astype(np.float32))


def test_mfcc_for_a_keyword_spotting_input(tmp_path):
    """DS-CNN style: 1 s at 16 kHz, 40 ms frames every 20 ms -> 49 frames x 10 MFCCs."""
    rate = 16000
    t = np.arange(rate) / rate
    write_wav(tmp_path / "yes.wav", 0.3 * np.sin(2 * np.pi * 1000 * t), rate)
    onnx.save(int_input_model([1, 1, 49, 10], 2), tmp_path / "kws.onnx")
    r = cli("yes.wav", "--model", "kws.onnx", "-o", "in.bin", "--features", "mfcc",
            "--frame-ms", "40", "--hop-ms", "20", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "16000 samples at 16000 Hz (1.000 s) -> 49 frames of 640 samples every 320" in \
        r.stdout
    got = np.fromfile(tmp_path / "in.bin", np.int8).reshape(1, 1, 49, 10)
    floats = prep.audio_floats(str(tmp_path / "yes.wav"), (1, 49, 10), prep.AudioOptions(
        features="mfcc", frame_ms=40, hop_ms=20), [])
    assert np.array_equal(got, qmath.quantize(floats[None], 2, 8))
    # an independent MFCC: scipy's window and DCT on the same log-mel energies
    scipy_fft = pytest.importorskip("scipy.fft")
    from scipy.signal import get_window

    x, _ = read_wav(str(tmp_path / "yes.wav"))
    frames = np.stack([x[i * 320:i * 320 + 640] for i in range(49)])
    power = np.abs(np.fft.rfft(frames * get_window("hann", 640), 1024)) ** 2
    logmel = np.log(power @ prep.mel_filterbank(40, 1024, rate, 20, 8000) + 1e-6)
    ref = scipy_fft.dct(logmel, type=2, norm="ortho", axis=1)[:, :10]
    assert np.allclose(floats[0], ref, atol=1e-9)


def test_log_mel_peaks_at_the_tones_band_and_resamples(tmp_path):
    rate = 8000
    t = np.arange(rate // 2) / rate
    write_wav(tmp_path / "tone.wav", 0.5 * np.sin(2 * np.pi * 1500 * t), rate)
    onnx.save(int_input_model([1, 50, 32], 0), tmp_path / "mel.onnx")
    r = cli("tone.wav", "--model", "mel.onnx", "-o", "m.npy", "--sample-rate", "16000",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "resampled 8000 Hz -> 16000 Hz" in r.stdout
    floats = prep.audio_floats(str(tmp_path / "tone.wav"), (50, 32), prep.AudioOptions(
        sample_rate=16000), [])
    bank = prep.mel_filterbank(32, 512, 16000, 20, 8000)
    centre_hz = np.argmax(bank, axis=0) * 16000 / 512
    band = int(np.argmax(floats[10]))
    assert abs(centre_hz[band] - 1500) < 150  # the strongest band holds the tone
    assert floats.shape == (50, 32)


def test_mel_filterbank_triangles():
    bank = prep.mel_filterbank(10, 512, 16000, 20, 8000)
    assert bank.shape == (257, 10) and bank.max() <= 1 and np.all(bank >= 0)
    mel = 2595 * np.log10(1 + np.array([20, 8000]) / 700)
    edges = 700 * (10 ** (np.linspace(mel[0], mel[1], 12) / 2595) - 1)
    freqs = np.linspace(0, 8000, 257)
    for k in range(10):  # zero outside each triangle's edges
        outside = (freqs <= edges[k]) | (freqs >= edges[k + 2])
        assert np.all(bank[outside, k] == 0)
    assert math.isclose(prep.dct_matrix(8, "ortho") @ prep.dct_matrix(8, "ortho").T @
                        np.ones(8) @ np.ones(8), 8.0)
