"""Reading images and WAV audio with the standard library and numpy (``thinker
prepare-input``).

Images: PNG (8/16-bit gray, gray + alpha, RGB, RGBA, palette; 1/2/4-bit gray and palette;
non-interlaced), binary PPM/PGM (P5, P6), uncompressed BMP (24/32-bit), and ``.npy`` (an
[H, W] or [H, W, C] array). Any other format (JPEG, ...) goes through Pillow when it is
installed (``pip install 'thinker[image]'``); the error says so when it is not.

Audio: RIFF WAV with PCM integers (8/16/24/32-bit) or IEEE float (32/64-bit) samples,
including WAVE_FORMAT_EXTENSIBLE; channels are averaged to mono.
"""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np

from thinker.errors import ThinkerInputError
from thinker.errors import name as shown

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_image(path: str) -> tuple[np.ndarray, int]:
    """An image as [H, W, C] (C = 1, 2, 3 or 4; unsigned integers, or any numbers from .npy)
    and the largest value its samples can take (255 for 8-bit, 65535 for 16-bit; 1.0 for a
    float .npy)."""
    where = shown(path)
    if not os.path.isfile(path):
        raise ThinkerInputError(f"{where}: no such image file")
    with open(path, "rb") as f:
        head = f.read(8)
    lower = path.lower()
    if lower.endswith(".npy"):
        arr = np.load(path, allow_pickle=False)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
            raise ThinkerInputError(f"{where}: an image .npy must be [H, W] or [H, W, C] with C "
                                    f"in 1..4, got shape {list(arr.shape)}")
        peak = float(np.iinfo(arr.dtype).max) if np.issubdtype(arr.dtype, np.integer) else 1.0
        return arr, peak
    if head == PNG_SIGNATURE:
        return _read_png(path, where)
    if head[:2] in (b"P5", b"P6"):
        return _read_pnm(path, where)
    if head[:2] == b"BM":
        return _read_bmp(path, where)
    return _read_with_pillow(path, where)


def _read_with_pillow(path: str, where: str) -> tuple[np.ndarray, int]:
    try:
        from PIL import Image
    except ImportError:
        raise ThinkerInputError(
            f"{where}: this image format needs Pillow, which is not installed; install it "
            "(pip install 'thinker[image]', or pip install pillow) or convert the image to PNG, "
            "PPM or BMP") from None
    try:
        with Image.open(path) as img:
            img = img.convert("RGBA" if "A" in img.getbands() else "RGB") \
                if img.mode not in ("L", "RGB", "RGBA", "LA") else img
            arr = np.asarray(img)
    except Exception as exc:  # Pillow raises many kinds
        raise ThinkerInputError(f"{where}: Pillow cannot read it ({exc})") from None
    return (arr[:, :, None] if arr.ndim == 2 else arr), 255


# ---- PNG ------------------------------------------------------------------------------------


def _read_png(path: str, where: str) -> tuple[np.ndarray, int]:
    with open(path, "rb") as f:
        data = f.read()
    pos, header, palette, alpha, idat = 8, None, None, None, []
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if len(body) != length:
            raise ThinkerInputError(f"{where}: truncated PNG ({kind!r} chunk)")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = np.frombuffer(body, np.uint8).reshape(-1, 3)
        elif kind == b"tRNS":
            alpha = np.frombuffer(body, np.uint8)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None or not idat:
        raise ThinkerInputError(f"{where}: not a complete PNG (no IHDR or image data)")
    width, height, depth, color, _, _, interlace = header
    if interlace:
        raise ThinkerInputError(f"{where}: interlaced PNGs are not read; save it without "
                                "interlacing, or install Pillow (pip install 'thinker[image]')")
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(color)
    if channels is None or depth not in (1, 2, 4, 8, 16):
        raise ThinkerInputError(f"{where}: PNG color type {color}, bit depth {depth} is not "
                                "supported")
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as exc:
        raise ThinkerInputError(f"{where}: corrupt PNG data ({exc})") from None
    bits = depth * channels
    stride = (width * bits + 7) // 8
    bpp = max(1, bits // 8)  # bytes per pixel for the filters
    if len(raw) < height * (stride + 1):
        raise ThinkerInputError(f"{where}: truncated PNG image data")
    rows = np.frombuffer(raw, np.uint8)[: height * (stride + 1)].reshape(height, stride + 1)
    out = np.zeros((height, stride), np.uint8)
    prev = np.zeros(stride, np.int32)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:].astype(np.int32)
        if kind == 0:
            cur = line
        elif kind == 1:  # Sub: each byte adds the byte bpp to the left (a running sum)
            cur = line.copy()
            for start in range(bpp):
                cur[start::bpp] = np.cumsum(cur[start::bpp]) & 0xFF
        elif kind == 2:  # Up
            cur = (line + prev) & 0xFF
        elif kind in (3, 4):  # Average, Paeth: left-to-right dependency
            cur = line.copy()
            for i in range(stride):
                left = cur[i - bpp] if i >= bpp else 0
                up = prev[i]
                if kind == 3:
                    cur[i] = (cur[i] + ((left + up) >> 1)) & 0xFF
                else:
                    ul = prev[i - bpp] if i >= bpp else 0
                    p = left + up - ul
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - ul)
                    pred = left if pa <= pb and pa <= pc else (up if pb <= pc else ul)
                    cur[i] = (cur[i] + pred) & 0xFF
        else:
            raise ThinkerInputError(f"{where}: corrupt PNG (filter type {kind})")
        out[y] = cur
        prev = cur
    if depth == 16:
        pixels = out.view(">u2").astype(np.uint16).reshape(height, width, channels)
    elif depth == 8:
        pixels = out.reshape(height, width, channels)
    else:  # 1/2/4-bit gray or palette indices
        per_byte = 8 // depth
        unpacked = np.unpackbits(out, axis=1) if depth == 1 else np.stack(
            [(out >> (8 - depth * (k + 1))) & ((1 << depth) - 1) for k in range(per_byte)],
            axis=2).reshape(height, -1)
        pixels = unpacked[:, :width].reshape(height, width, 1).astype(np.uint8)
        if color == 0:  # scale gray to 8 bits
            pixels = (pixels.astype(np.uint16) * 255 // ((1 << depth) - 1)).astype(np.uint8)
    if color == 3:
        if palette is None:
            raise ThinkerInputError(f"{where}: palette PNG without a palette")
        index = pixels[:, :, 0]
        rgb = palette[np.minimum(index, len(palette) - 1)]
        if alpha is not None:
            a = np.full(len(palette), 255, np.uint8)
            a[: len(alpha)] = alpha[: len(palette)]
            rgb = np.concatenate([rgb, a[np.minimum(index, len(palette) - 1)][:, :, None]], 2)
        pixels = rgb
    return pixels, (65535 if depth == 16 else 255)


def write_png(path: str, pixels: np.ndarray) -> None:
    """An 8-bit gray / RGB / RGBA PNG (tests and examples)."""
    arr = np.asarray(pixels, np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    color = {1: 0, 2: 4, 3: 2, 4: 6}[arr.shape[2]]
    height, width = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[y].tobytes() for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    data = PNG_SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, color, 0, 0,
                                                      0)) \
        + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


# ---- PPM / PGM, BMP --------------------------------------------------------------------------


def _read_pnm(path: str, where: str) -> tuple[np.ndarray, int]:
    with open(path, "rb") as f:
        data = f.read()
    fields, pos = [], 2
    while len(fields) < 3:
        while pos < len(data) and data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos)
            continue
        start = pos
        while pos < len(data) and not data[pos:pos + 1].isspace():
            pos += 1
        fields.append(int(data[start:pos]))
    width, height, peak = fields
    channels = 3 if data[:2] == b"P6" else 1
    dtype = np.dtype(">u2") if peak > 255 else np.dtype(np.uint8)
    count = width * height * channels
    body = np.frombuffer(data, dtype, count, pos + 1) if len(data) >= pos + 1 + count * \
        dtype.itemsize else None
    if body is None:
        raise ThinkerInputError(f"{where}: truncated PPM/PGM")
    return body.astype(np.uint16 if peak > 255 else np.uint8).reshape(height, width,
                                                                       channels), peak


def _read_bmp(path: str, where: str) -> tuple[np.ndarray, int]:
    with open(path, "rb") as f:
        data = f.read()
    offset = struct.unpack_from("<I", data, 10)[0]
    width, height, _, bpp, compression = struct.unpack_from("<iiHHI", data, 18)
    if bpp not in (24, 32) or compression not in (0, 3):
        raise ThinkerInputError(f"{where}: only uncompressed 24/32-bit BMPs are read (this one "
                                f"is {bpp}-bit, compression {compression}); save it as PNG")
    step = (width * bpp // 8 + 3) & ~3
    rows = abs(height)
    body = np.frombuffer(data, np.uint8, rows * step, offset).reshape(rows, step)
    pixels = body[:, : width * bpp // 8].reshape(rows, width, bpp // 8)[:, :, 2::-1]
    return (pixels[::-1] if height > 0 else pixels).copy(), 255


# ---- WAV -------------------------------------------------------------------------------------


def read_wav(path: str) -> tuple[np.ndarray, int]:
    """(mono float64 samples in [-1, 1], sample rate)."""
    where = shown(path)
    if not os.path.isfile(path):
        raise ThinkerInputError(f"{where}: no such audio file")
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ThinkerInputError(f"{where}: not a WAV file (RIFF/WAVE header missing)")
    pos, fmt, body = 12, None, None
    while pos + 8 <= len(data):
        kind, length = struct.unpack_from("<4sI", data, pos)
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"fmt ":
            fmt = chunk
        elif kind == b"data":
            body = chunk
        pos += 8 + length + (length & 1)
    if fmt is None or body is None:
        raise ThinkerInputError(f"{where}: WAV without a fmt or data chunk")
    tag, channels, rate, _, block, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == 0xFFFE and len(fmt) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the sub-format's tag
        tag = struct.unpack_from("<H", fmt, 24)[0]
    if channels < 1 or block < 1:
        raise ThinkerInputError(f"{where}: WAV with {channels} channels, block {block}")
    frames = len(body) // block
    raw = np.frombuffer(body[: frames * block], np.uint8).reshape(frames, channels,
                                                                  block // channels)
    width = block // channels
    if tag == 1 and bits <= 8:
        samples = (raw[:, :, 0].astype(np.float64) - 128.0) / 128.0
    elif tag == 1 and width in (2, 3, 4):
        padded = np.zeros((frames, channels, 4), np.uint8)
        padded[:, :, 4 - width:] = raw  # little-endian: the sample in the top bytes
        samples = padded.view("<i4")[:, :, 0].astype(np.float64) / 2.0**31
    elif tag == 3 and width in (4, 8):
        samples = raw.reshape(frames, channels * width).view(f"<f{width}").astype(np.float64)
    else:
        raise ThinkerInputError(f"{where}: WAV format tag {tag} with {bits}-bit samples is not "
                                "supported; use PCM (8/16/24/32-bit) or float")
    return samples.mean(axis=1), int(rate)


def write_wav(path: str, samples: np.ndarray, rate: int) -> None:
    """16-bit PCM mono (tests and examples)."""
    pcm = np.clip(np.round(np.asarray(samples, np.float64) * 32767), -32768, 32767)
    body = pcm.astype("<i2").tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + len(body)) + b"WAVE" + b"fmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", len(body))
    with open(path, "wb") as f:
        f.write(header + body)
