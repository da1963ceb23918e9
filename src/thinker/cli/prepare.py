"""``thinker prepare-input``: images and WAV audio -> a model's input file (docs/cli.md)."""

from __future__ import annotations

import argparse

from thinker.cli.common import check_outputs, tensor_file_bytes, write_files
from thinker.errors import ThinkerInputError
from thinker.errors import name as shown


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of numbers") \
            from None


_floats.__name__ = "numbers"


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def add_parser(sub, subcommand) -> None:
    p = subcommand(
        sub, "prepare-input", cmd_prepare_input,
        "turn images or WAV files into a model's input file (quantized as it expects)", (
            "Read images (PNG, PPM/PGM, BMP, .npy; other formats with Pillow) or WAV audio, "
            "make them the model input's shape (images: channels, resize, scale, mean/std, "
            "NCHW or NHWC; audio: log-mel or MFCC features), quantize with the input's "
            "exponent and dtype, and write one file: .bin (raw, exactly the model's static "
            "batch: one file per sample for batch 1) or .npy (any number of samples)."))
    p.add_argument("files", nargs="+", metavar="FILE", help="images or .wav files, one sample "
                   "each")
    p.add_argument("--model", required=True, help="model.bin or .onnx whose input to fill")
    p.add_argument("-o", "--output", required=True, help="the input file to write (.bin or .npy)")
    p.add_argument("--input", metavar="NAME", help="which model input (default: the first)")
    p.add_argument("--round-mode", dest="round_mode", default="floor_add",
                   choices=["floor_add", "floor", "round", "ceil"],
                   help="rounding of the quantization (default floor_add, the model's Quant "
                        "unless exported with another round_mode)")
    img = p.add_argument_group("images")
    img.add_argument("--mean", type=_floats, default=None,
                     help="subtracted after scaling: one value or one per channel/feature "
                          "(e.g. 0.485,0.456,0.406); default 0")
    img.add_argument("--std", type=_floats, default=None,
                     help="divided by after the mean: one value or one per channel/feature; "
                          "default 1")
    img.add_argument("--scale", type=float, default=None,
                     help="pixel multiplier before mean/std (default 1/255 for 8-bit images, "
                          "1/65535 for 16-bit: values in [0, 1])")
    img.add_argument("--layout", choices=["nchw", "nhwc"], default=None,
                     help="image layout of the input (default: from its shape, channels "
                          "first unless only the last axis looks like channels)")
    img.add_argument("--resize", choices=["bilinear", "nearest", "none"], default="bilinear",
                     help="to the input's height and width (default bilinear, half-pixel "
                          "centres; none: the image must already have that size)")
    img.add_argument("--bgr", action="store_true", help="channel order B, G, R")
    aud = p.add_argument_group("audio (.wav)")
    aud.add_argument("--features", choices=["logmel", "mfcc"], default="logmel",
                     help="log-mel energies (default) or MFCCs, one frame per time step")
    aud.add_argument("--sample-rate", dest="sample_rate", type=_positive(int), default=None,
                     help="resample to this rate first (default: the file's)")
    aud.add_argument("--frame-ms", dest="frame_ms", type=_positive(float), default=25.0,
                     help="frame (window) length in ms (default 25)")
    aud.add_argument("--hop-ms", dest="hop_ms", type=_positive(float), default=10.0,
                     help="frame step in ms (default 10)")
    aud.add_argument("--n-fft", dest="n_fft", type=_positive(int), default=None,
                     help="FFT size (default: the next power of two >= the frame)")
    aud.add_argument("--n-mels", dest="n_mels", type=_positive(int), default=None,
                     help="mel bands (default: the input's feature count for logmel, 40 for "
                          "mfcc)")
    aud.add_argument("--fmin", type=float, default=20.0, help="lowest mel frequency (Hz, "
                     "default 20)")
    aud.add_argument("--fmax", type=float, default=None, help="highest mel frequency (Hz, "
                     "default half the sample rate)")
    aud.add_argument("--spectrum", choices=["power", "magnitude"], default="power",
                     help="|FFT|^2 (default) or |FFT| before the mel filters")
    aud.add_argument("--log-offset", dest="log_offset", type=float, default=1e-6,
                     help="log(mel + offset) (default 1e-6)")
    aud.add_argument("--dct", choices=["ortho", "tf"], default="ortho",
                     help="MFCC DCT-II scaling: orthonormal (default) or TensorFlow's")
    aud.add_argument("--preemphasis", type=float, default=0.0,
                     help="y[n] = x[n] - a x[n-1] before framing (default 0: none)")
    aud.add_argument("--audio-layout", dest="audio_layout", choices=["tf", "ft"], default="tf",
                     help="tf (default): the input's last axis is the features, the others "
                          "time; ft: the last axis is time")


def cmd_prepare_input(args: argparse.Namespace) -> int:
    import numpy as np

    from thinker.runtime import load
    from thinker.tools.prepare_input import AudioOptions, ImageOptions, prepare

    inputs = [("model", args.model)] + [("input file", f) for f in args.files]
    check_outputs([("-o", args.output)], inputs)
    model = load(args.model)
    specs = {s.name: s for s in model.inputs}
    spec = specs.get(args.input) if args.input else model.inputs[0]
    if spec is None:
        raise ThinkerInputError(f"--input {shown(args.input)}: the model's inputs are "
                                f"{', '.join(shown(n) for n in specs)}")
    mean, std = args.mean or [0.0], args.std or [1.0]
    image = ImageOptions(mean=mean, std=std, scale=args.scale, layout=args.layout,
                         resize=args.resize, bgr=args.bgr)
    audio = AudioOptions(features=args.features, sample_rate=args.sample_rate,
                         frame_ms=args.frame_ms, hop_ms=args.hop_ms, n_fft=args.n_fft,
                         n_mels=args.n_mels, fmin=args.fmin, fmax=args.fmax,
                         spectrum=args.spectrum, log_offset=args.log_offset, dct=args.dct,
                         preemphasis=args.preemphasis, layout=args.audio_layout, mean=mean,
                         std=std)
    value, notes = prepare(list(args.files), spec, image, audio, args.round_mode)
    static = spec.shape[0] if spec.shape else 1
    if not args.output.lower().endswith(".npy") and value.shape[0] != static:
        raise ThinkerInputError(
            f"-o {shown(args.output)}: a .bin input holds exactly the model's batch of "
            f"{static} sample(s), {value.shape[0]} given; give {static} file(s), or write "
            ".npy (any number of samples)")
    write_files([(args.output, tensor_file_bytes(args.output, value))])
    for note in notes:
        print(f"note: {note}")
    what = f"exponent {spec.exponent}" if spec.exponent is not None else "float"
    print(f"wrote {shown(args.output)}: input '{shown(spec.name)}' {np.dtype(value.dtype).name}"
          f"{list(value.shape)} ({what}, {value.nbytes:,} B)")
    return 0
