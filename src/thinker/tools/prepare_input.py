"""``thinker prepare-input``: an image or a WAV file -> exactly what a model's input takes
(docs/cli.md, "thinker prepare-input").

Images: decoded (``media.read_image``), converted to the input's channel count (gray =
0.299 R + 0.587 G + 0.114 B; gray replicated to RGB; alpha dropped; ``--bgr`` swaps the
order), resized to the input's height and width (bilinear with half-pixel centres, as
PyTorch's ``interpolate(align_corners=False)`` and OpenCV; or nearest), scaled
(``x = pixel * scale``, default 1 / the format's peak, i.e. [0, 1]), normalized per channel
(``(x - mean) / std``) and laid out NCHW or NHWC.

Audio: read (``media.read_wav``), resampled to ``sample_rate`` when the file differs (FFT
resampling), cut or zero-padded to exactly the frames the input holds, framed (``frame_ms``,
``hop_ms``, periodic Hann window, ``n_fft`` = the next power of two), |FFT|^2 (or |FFT| with
``spectrum="magnitude"``), a mel filterbank (HTK mel scale, ``n_mels`` triangles from ``fmin``
to ``fmax``, unnormalized, as TensorFlow's ``linear_to_mel_weight_matrix``), ``log(mel +
log_offset)``; MFCC is the DCT-II of the log-mel frames (orthonormal, or TensorFlow's
``mfccs_from_log_mel_spectrograms`` scaling with ``dct="tf"``), first ``n_mfcc`` kept.
Features [T, F] fill the input time-major (``layout="tf"``: the last axis is the features) or
feature-major (``"ft"``: the last axis is time); optional ``mean``/``std`` normalize them.

Then the floats are quantized with the input's exponent (``qmath.quantize_mode``: the model's
rounding, floor_add unless given) in its dtype; a float input takes the floats as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from thinker import qmath
from thinker.errors import ThinkerInputError
from thinker.errors import name as shown
from thinker.tools import media

AUDIO_EXTENSIONS = (".wav", ".wave")


@dataclass
class ImageOptions:
    mean: list[float] = field(default_factory=lambda: [0.0])
    std: list[float] = field(default_factory=lambda: [1.0])
    scale: float | None = None  # None: 1 / the format's peak value
    layout: str | None = None  # nchw | nhwc | None: from the input's shape
    resize: str = "bilinear"  # bilinear | nearest | none
    bgr: bool = False


@dataclass
class AudioOptions:
    features: str = "logmel"  # logmel | mfcc
    sample_rate: int | None = None  # None: the file's
    frame_ms: float = 25.0
    hop_ms: float = 10.0
    n_fft: int | None = None
    n_mels: int | None = None  # None: the feature count (logmel), 40 (mfcc)
    fmin: float = 20.0
    fmax: float | None = None  # None: sample_rate / 2
    spectrum: str = "power"  # power | magnitude
    log_offset: float = 1e-6
    dct: str = "ortho"  # ortho | tf
    preemphasis: float = 0.0
    layout: str = "tf"  # tf: [..., T, F] | ft: [..., F, T]
    mean: list[float] = field(default_factory=lambda: [0.0])
    std: list[float] = field(default_factory=lambda: [1.0])


# ---- images -----------------------------------------------------------------------------------


def image_layout(sample_shape: tuple[int, ...], layout: str | None) -> str:
    """nchw / nhwc for a [C, H, W]-or-[H, W, C] sample, hw for [H, W] (gray)."""
    if len(sample_shape) == 2:
        return "hw"
    if len(sample_shape) != 3:
        raise ThinkerInputError(
            f"the model's input sample {list(sample_shape)} is not an image ([C, H, W], "
            "[H, W, C] or [H, W]); give audio, or prepare the array yourself (.npy)")
    if layout:
        return layout
    first, last = sample_shape[0], sample_shape[2]
    if first in (1, 3, 4) or last not in (1, 3, 4):
        return "nchw"
    return "nhwc"


def to_channels(img: np.ndarray, channels: int, bgr: bool, where: str) -> np.ndarray:
    """[H, W, C] float -> [H, W, channels]."""
    c = img.shape[2]
    if c in (2, 4):  # drop alpha
        img, c = img[:, :, : c - 1], c - 1
    if channels == 1 and c == 3:
        img = img @ np.array([0.299, 0.587, 0.114])[:, None]
    elif channels == 3 and c == 1:
        img = np.repeat(img, 3, axis=2)
    elif channels != img.shape[2]:
        raise ThinkerInputError(f"{where}: the image has {c} channel(s), the model takes "
                                f"{channels}")
    if bgr and channels == 3:
        img = img[:, :, ::-1]
    return img


def resize(img: np.ndarray, height: int, width: int, mode: str, where: str) -> np.ndarray:
    """[H, W, C] float -> [height, width, C]: bilinear with half-pixel centres, or nearest."""
    h, w = img.shape[:2]
    if (h, w) == (height, width):
        return img
    if mode == "none":
        raise ThinkerInputError(f"{where}: the image is {h}x{w}, the model takes "
                                f"{height}x{width}; resize it (or drop --resize none)")
    if mode == "nearest":
        rows = np.minimum((np.arange(height) * h) // height, h - 1)
        cols = np.minimum((np.arange(width) * w) // width, w - 1)
        return img[rows][:, cols]

    def axis(n_out: int, n_in: int):
        pos = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, pos - lo

    r0, r1, fr = axis(height, h)
    c0, c1, fc = axis(width, w)
    top = img[r0] * (1 - fr)[:, None, None] + img[r1] * fr[:, None, None]
    return top[:, c0] * (1 - fc)[None, :, None] + top[:, c1] * fc[None, :, None]


def _per_channel(values: list[float], channels: int, what: str) -> np.ndarray:
    if len(values) == 1:
        return np.full(channels, values[0])
    if len(values) != channels:
        raise ThinkerInputError(f"--{what}: {len(values)} values for {channels} channels; give "
                                f"one, or one per channel")
    return np.asarray(values, dtype=np.float64)


def image_floats(path: str, sample_shape: tuple[int, ...], options: ImageOptions) -> np.ndarray:
    """One sample of the model's input shape, float64, from an image file."""
    where = shown(path)
    layout = image_layout(sample_shape, options.layout)
    if layout == "nchw":
        channels, height, width = sample_shape
    elif layout == "nhwc":
        height, width, channels = sample_shape
    else:
        (height, width), channels = sample_shape, 1
    pixels, peak = media.read_image(path)
    img = pixels.astype(np.float64)
    img = to_channels(img, channels, options.bgr, where)
    img = resize(img, height, width, options.resize, where)
    scale = (1.0 / peak) if options.scale is None else options.scale
    img = img * scale
    mean = _per_channel(options.mean, channels, "mean")
    std = _per_channel(options.std, channels, "std")
    if np.any(std == 0):
        raise ThinkerInputError("--std: a standard deviation of 0")
    img = (img - mean) / std
    if layout == "nchw":
        return img.transpose(2, 0, 1)
    if layout == "hw":
        return img[:, :, 0]
    return img


# ---- audio ------------------------------------------------------------------------------------


def resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    """FFT resampling of a whole clip (band-limited; numpy only)."""
    if rate == target:
        return x
    n = round(len(x) * target / rate)
    spectrum = np.fft.rfft(x)
    out = np.zeros(n // 2 + 1, dtype=complex)
    keep = min(len(spectrum), len(out))
    out[:keep] = spectrum[:keep]
    return np.fft.irfft(out, n) * (n / len(x))


def mel_filterbank(n_mels: int, n_fft: int, rate: int, fmin: float, fmax: float) -> np.ndarray:
    """[n_fft // 2 + 1, n_mels] triangles on the HTK mel scale (unnormalized)."""
    def mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    if not 0 <= fmin < fmax <= rate / 2:
        raise ThinkerInputError(f"mel range {fmin}..{fmax} Hz must lie in 0..{rate / 2} Hz "
                                "(half the sample rate)")
    edges = hz(np.linspace(mel(fmin), mel(fmax), n_mels + 2))
    freqs = np.linspace(0, rate / 2, n_fft // 2 + 1)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    up = (freqs[:, None] - lower) / (centre - lower)
    down = (upper - freqs[:, None]) / (upper - centre)
    return np.maximum(0.0, np.minimum(up, down))


def dct_matrix(n: int, kind: str) -> np.ndarray:
    """[n, n] DCT-II: orthonormal, or TensorFlow's mfccs_from_log_mel_spectrograms scaling
    (sqrt(2 / n) for every coefficient)."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    basis = np.cos(np.pi * k * (2 * i + 1) / (2 * n))
    if kind == "tf":
        return basis * math.sqrt(2.0 / n)
    scale = np.full((n, 1), math.sqrt(2.0 / n))
    scale[0] = math.sqrt(1.0 / n)
    return basis * scale


def audio_layout(sample_shape: tuple[int, ...], layout: str) -> tuple[int, int]:
    """(frames T, features F) of the model's input sample for the layout."""
    if not sample_shape:
        raise ThinkerInputError("the model's input is a scalar; it takes no audio features")
    if layout == "tf":
        return math.prod(sample_shape[:-1]), int(sample_shape[-1])
    return int(sample_shape[-1]), math.prod(sample_shape[:-1])


def audio_floats(path: str, sample_shape: tuple[int, ...], o: AudioOptions,
                 notes: list[str]) -> np.ndarray:
    """One sample of the model's input shape, float64, from a WAV file."""
    frames, features = audio_layout(sample_shape, o.layout)
    x, rate = media.read_wav(path)
    target = o.sample_rate or rate
    if target != rate:
        notes.append(f"{shown(path)}: resampled {rate} Hz -> {target} Hz")
        x = resample(x, rate, target)
        rate = target
    if o.preemphasis:
        x = np.append(x[:1], x[1:] - o.preemphasis * x[:-1])
    frame = round(o.frame_ms * rate / 1000.0)
    hop = round(o.hop_ms * rate / 1000.0)
    if frame < 2 or hop < 1:
        raise ThinkerInputError(f"--frame-ms {o.frame_ms} / --hop-ms {o.hop_ms} at {rate} Hz "
                                "give frames shorter than 2 samples")
    n_fft = o.n_fft or 1 << (frame - 1).bit_length()
    if n_fft < frame:
        raise ThinkerInputError(f"--n-fft {n_fft} is shorter than a frame ({frame} samples)")
    needed = (frames - 1) * hop + frame
    given = len(x)
    x = x[:needed] if given >= needed else np.concatenate([x, np.zeros(needed - given)])
    notes.append(f"{shown(path)}: {given} samples at {rate} Hz ({given / rate:.3f} s) -> "
                 f"{frames} frames of {frame} samples every {hop}"
                 + (f" (cut {given - needed} samples)" if given > needed else
                    f" (padded {needed - given} zero samples)" if given < needed else ""))
    index = np.arange(frame)[None, :] + hop * np.arange(frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(frame) / frame)  # periodic Hann
    spectrum = np.abs(np.fft.rfft(x[index] * window, n_fft))
    if o.spectrum == "power":
        spectrum = spectrum**2
    n_mels = o.n_mels or (features if o.features == "logmel" else 40)
    if o.features == "logmel" and n_mels != features:
        raise ThinkerInputError(f"--n-mels {n_mels}: the model's input takes {features} "
                                f"features per frame ({list(sample_shape)}, layout {o.layout})")
    if o.features == "mfcc" and n_mels < features:
        raise ThinkerInputError(f"--n-mels {n_mels} is less than the {features} MFCCs the "
                                "model takes")
    bank = mel_filterbank(n_mels, n_fft, rate, o.fmin, o.fmax or rate / 2)
    feats = np.log(spectrum @ bank + o.log_offset)
    if o.features == "mfcc":
        feats = (feats @ dct_matrix(n_mels, o.dct).T)[:, :features]
    mean = _per_channel(o.mean, features, "mean")
    std = _per_channel(o.std, features, "std")
    if np.any(std == 0):
        raise ThinkerInputError("--std: a standard deviation of 0")
    feats = (feats - mean) / std
    if o.layout == "ft":
        feats = feats.T
    return feats.reshape(sample_shape)


# ---- into the model's input -------------------------------------------------------------------


def quantize_for(spec, floats: np.ndarray, round_mode: str, notes: list[str]) -> np.ndarray:
    """Floats -> the input's dtype: integers at its exponent (saturated, counted), or float."""
    if np.issubdtype(spec.dtype, np.floating):
        return floats.astype(spec.dtype)
    if spec.exponent is None:
        raise ThinkerInputError(f"input '{shown(spec.name)}' is {spec.dtype} without an exponent "
                                "(indices, not a quantized value): prepare-input cannot fill it")
    bits = np.dtype(spec.dtype).itemsize * 8
    lo, hi = qmath.int_range(bits)
    ints = qmath.quantize_mode(floats, spec.exponent, bits, round_mode)
    rounded = qmath.round_float(floats * 2.0**spec.exponent, round_mode)
    saturated = int(np.count_nonzero((rounded < lo) | (rounded > hi)))
    if saturated:
        notes.append(f"{saturated} of {floats.size} values saturated at the input's range "
                     f"[{lo / 2.0**spec.exponent:g}, {hi / 2.0**spec.exponent:g}] "
                     f"(exponent {spec.exponent}); check --mean/--std/--scale")
    return ints.astype(spec.dtype)


def prepare(paths: list[str], spec, image: ImageOptions, audio: AudioOptions,
            round_mode: str = "floor_add") -> tuple[np.ndarray, list[str]]:
    """A batch [len(paths), *sample] for the model input ``spec`` (TensorSpec), and notes."""
    notes: list[str] = []
    sample = tuple(spec.shape[1:])
    floats = []
    for path in paths:
        if path.lower().endswith(AUDIO_EXTENSIONS):
            floats.append(audio_floats(path, sample, audio, notes))
        else:
            floats.append(image_floats(path, sample, image))
    batch = np.stack(floats)
    return quantize_for(spec, batch, round_mode, notes), notes


__all__ = ["AudioOptions", "ImageOptions", "audio_floats", "image_floats", "mel_filterbank",
           "prepare", "quantize_for", "resize"]
