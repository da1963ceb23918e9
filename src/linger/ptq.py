"""Post-training quantization: a float model + a few calibration batches -> the same quantized
model QAT produces (export it with ``linger.onnx.export``), without training.

    qmodel = linger.ptq(model, batches, config, method="percentile")
    linger.onnx.export(qmodel, example, "model.onnx")

    python -m linger.ptq MODULE:FUNCTION --data calib.npy -o model.onnx [--method mse]

``linger.init`` builds the quantized model (weights: per-tensor power-of-two exponents from
their absolute maximum, as always); then every activation quantizer gets its exponent from
statistics of the values it sees on the calibration data, collected in two passes (the second
with the exponents of the first, so every layer is calibrated on its quantized inputs):

* ``abs_max``: the largest |value|; exponent ``round(bits - 1 - log2(max))`` (the original
  linger's ``abs_max``; the same rule MOM uses for its moving range);
* ``top_10``: the 10th largest |value| (the original linger's default ``top_10``: a few
  outliers may saturate);
* ``percentile``: the ``percentile``-th percentile of |value| (default 99.99);
* ``mse``: the exponent (around the abs-max one) whose quantization of the values has the
  smallest mean squared error.

The model comes back in eval mode, ready for export; it can also be fine-tuned with QAT.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn as nn

from linger.errors import LingerConfigError
from linger.fakequant import range_exponent
from linger.quantizer import ActivationQuantizer, calibration

METHODS = ("abs_max", "top_10", "percentile", "mse")
SAMPLES_PER_QUANTIZER = 200_000


class _Stats:
    """What one quantizer saw: the largest values and a uniform sample of all values."""

    def __init__(self, seed: int):
        self.top = np.zeros(0)
        self.sample = np.zeros(0, np.float32)
        self.seen = 0
        self.rng = np.random.default_rng(seed)

    def add(self, x: torch.Tensor) -> None:
        v = x.detach().float().reshape(-1).cpu().numpy()
        if v.size == 0:
            return
        a = np.abs(v)
        k = min(10, a.size)
        self.top = np.sort(np.concatenate([self.top, np.partition(a, a.size - k)[-k:]]))[-10:]
        self.seen += v.size
        # keep each value with probability SAMPLES / seen (a uniform sample of the stream)
        keep = min(1.0, SAMPLES_PER_QUANTIZER / self.seen)
        chosen = v[self.rng.random(v.size) < keep] if keep < 1.0 else v
        self.sample = np.concatenate([self.sample, chosen.astype(np.float32)])
        if self.sample.size > SAMPLES_PER_QUANTIZER:
            self.sample = self.rng.choice(self.sample, SAMPLES_PER_QUANTIZER, replace=False)

    def value(self, method: str, percentile: float) -> float:
        if method == "abs_max":
            return float(self.top[-1]) if self.top.size else 0.0
        if method == "top_10":  # the original: the 10th largest (the max below 11 values)
            return float(self.top[0]) if self.top.size >= 10 else float(self.top[-1])
        return float(np.percentile(np.abs(self.sample), percentile)) if self.sample.size \
            else 0.0


def _mse_exponent(stats: _Stats, bits: int) -> int:
    q0 = range_exponent(max(stats.value("abs_max", 100.0), 1e-12), bits)
    x = stats.sample.astype(np.float64)
    if x.size == 0:
        return q0
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    best, best_q = math.inf, q0
    for q in range(q0 - 1, q0 + bits + 1):  # finer exponents clip the tails for resolution
        scale = 2.0 ** q
        error = float(np.mean((np.clip(np.floor(x * scale + 0.5), lo, hi) / scale - x) ** 2))
        if error < best - 1e-18:
            best, best_q = error, q
    return best_q


def _exponent(stats: _Stats, bits: int, method: str, percentile: float) -> int:
    if method == "mse":
        return _mse_exponent(stats, bits)
    value = stats.value(method, percentile)
    return range_exponent(value if value > 0 else 1.0, bits)


def _set(quantizer: ActivationQuantizer, q: int) -> None:
    """Freeze ``q`` in the quantizer, with MOM/TQT state that gives the same exponent."""
    with torch.no_grad():
        quantizer.exponent.fill_(int(q))
        quantizer.observed.fill_(1)
        if quantizer.method == "MOM":
            quantizer.running_range.fill_(2.0 ** (quantizer.bits - 1 - q))
        else:
            quantizer.log2_threshold.fill_(float(quantizer.bits - 1 - q))


def calibrate(qmodel: nn.Module, batches: list, method: str = "abs_max",
              percentile: float = 99.99, passes: int = 2) -> dict[str, int]:
    """Set every activation quantizer of a ``linger.init`` model from ``batches``; returns
    the exponents by quantizer path."""
    if method not in METHODS:
        raise LingerConfigError(f"calibration method {method!r}: use one of {METHODS}")
    if not 0 < percentile <= 100:
        raise LingerConfigError(f"percentile {percentile}: must be in (0, 100]")
    quantizers = [m for m in qmodel.modules() if isinstance(m, ActivationQuantizer)]
    fixed: dict[int, int] = {}
    for _ in range(max(passes, 1)):
        stats = {id(q): _Stats(i) for i, q in enumerate(quantizers)}

        def patched(quantizer: ActivationQuantizer, original, seen: _Stats):
            def observe(x: torch.Tensor) -> int:
                original(x)  # checks NaN/inf and keeps the MOM statistics moving
                seen.add(x)
                if id(quantizer) in fixed:
                    q = fixed[id(quantizer)]
                else:  # first pass: the running abs-max of what it saw so far
                    q = range_exponent(max(seen.value("abs_max", 100.0), 1e-12),
                                       quantizer.bits)
                quantizer.exponent.fill_(q)
                return q
            return observe

        for q in quantizers:
            q.observe = patched(q, ActivationQuantizer.observe.__get__(q), stats[id(q)])
        try:
            with calibration(qmodel):
                for batch in batches:
                    qmodel(*batch) if isinstance(batch, tuple | list) else qmodel(batch)
        finally:
            for q in quantizers:
                del q.observe
        for q in quantizers:
            if stats[id(q)].seen:
                fixed[id(q)] = _exponent(stats[id(q)], q.bits, method, percentile)
    for q in quantizers:
        if id(q) in fixed:
            _set(q, fixed[id(q)])
    return {q.path: fixed[id(q)] for q in quantizers if id(q) in fixed}


def ptq(model: nn.Module, calibration_batches: Iterable, config=None, method: str = "abs_max",
        percentile: float = 99.99, example_input=None) -> nn.Module:
    """Post-training quantization of a float ``model`` (left unchanged): ``linger.init`` with
    ``config``, then ``calibrate`` on ``calibration_batches`` (tensors, or tuples of inputs).
    Returns the quantized model in eval mode, exportable with ``linger.onnx.export``."""
    from linger.quantize import init

    batches = list(calibration_batches)
    if not batches:
        raise LingerConfigError("ptq: no calibration batches given")
    qmodel = init(model, config, example_input=example_input)
    calibrate(qmodel, batches, method, percentile)
    return qmodel.eval()


# -----------------------------------------------------------------------------------------
# command line


def _load_factory(spec: str):
    module_name, _, function = spec.partition(":")
    if not module_name or not function:
        raise LingerConfigError(f"{spec}: expected MODULE:FUNCTION (a function returning the "
                                "float torch model)")
    sys.path.insert(0, os.getcwd())
    try:
        return getattr(importlib.import_module(module_name), function)
    except (ImportError, AttributeError) as exc:
        raise LingerConfigError(f"{spec}: cannot import ({exc})") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="linger-ptq", description="Post-training quantization: a float model and "
        "calibration data -> a quantized ONNX model (thinker dialect) for tpacker.")
    parser.add_argument("model", help="MODULE:FUNCTION returning the float torch model "
                        "(called with --checkpoint when given)")
    parser.add_argument("--data", required=True, help="calibration inputs (.npy, batch on "
                        "axis 0)")
    parser.add_argument("-o", "--output", required=True, help="the ONNX file to write")
    parser.add_argument("--config", help="linger config (YAML)")
    parser.add_argument("--checkpoint", help="passed to the model function")
    parser.add_argument("--method", choices=METHODS, default="abs_max")
    parser.add_argument("--percentile", type=float, default=99.99)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    from linger.errors import LingerError
    from linger.onnx import export

    try:
        factory = _load_factory(args.model)
        model = factory(args.checkpoint) if args.checkpoint else factory()
        data = torch.from_numpy(np.load(args.data, allow_pickle=False).astype(np.float32))
        batches = [data[i:i + args.batch_size] for i in range(0, len(data), args.batch_size)]
        qmodel = ptq(model, batches, args.config, args.method, args.percentile)
        export(qmodel, data[:1], args.output)
    except (LingerError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.output} ({args.method} calibration on {len(data)} samples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
