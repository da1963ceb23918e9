"""ONNX attribute fuzzing (seeded): perturb the attributes, scales and constants of the seed
models (tests/c_executor), pack each with tpacker in-process, then run what it accepts through
both readers and executors (harness.check_files). tpacker may refuse, but only with a
ThinkerError; whatever it accepts both readers must accept and both executors must compute
identically."""

from __future__ import annotations

import copy
import math
import random
import traceback

import numpy as np
from onnx import helper, numpy_helper

SCALE_STEPS = [1, -1, 2, -2, 5, -5, 10, -10, 20, -20, 30, -30, 40, -40, 48, -48, 55, -55, 60, -60,
               62, -62, 63, -63, 64, -64, 100, -100]
ODD_FLOATS = [0.0, -1.0, 3.0, 0.3, float("nan"), float("inf"), float("-inf"), 2.0**-149,
              2.0**127]
ODD_INTS = [0, 1, -1, 2, 3, 4, 7, 8, 16, 32, 64, 65535, 65536, -65536, 2**31 - 1, -2**31]
STRING_VALUES = ["venus", "arcs", "mars", "venusA", "cortex-m", "VENUS", "nope", "constant",
                 "reflect", "edge", "nearest", "linear", "asymmetric", "floor", "half_pixel",
                 "NOTSET", "SAME_UPPER", ""]
NEW_ATTRS = {
    "o_bits": [4, 8, 16, 32, 7], "data_bits": [4, 8, 16, 32, 12], "strides": [[0, 1], [2, 2], [1]],
    "pads": [[-1, 0, 0, 0], [70000, 0, 0, 0], [1, 1]], "dilations": [[0, 1], [2, 2]],
    "kernel_shape": [[0, 1], [1, 1], [3, 3]], "group": [0, -1, 2], "ceil_mode": [1],
    "output_padding": [[-1, 0], [1, 1]], "fused_clip": [[-5, 5], [10, -10]], "act_type": [1],
    "axis": [0, 1, -1, 5], "dim": [0, 1, -1], "keepdims": [0], "divisor": [0, 3, -1],
    "divisor_override": [0, 5, -3], "count_include_pad": [0], "platform": ["arcs", "x"],
    "quant_mode": ["floor", "round", "ceil", "bogus"], "min": [float("nan"), -3.0],
    "max": [float("inf"), 3.0], "scale_y": [2.0**-3, 2.0**40], "scale_o": [2.0**100, 2.0**-60],
}


def _perturb_attr(rng: random.Random, attr) -> None:
    t = attr.type
    A = helper.AttributeProto
    if t == A.FLOAT:
        v = attr.f
        if rng.random() < 0.75 and v > 0 and math.isfinite(v):  # a scale moved by 2**k
            new = math.ldexp(v, rng.choice(SCALE_STEPS))
            attr.f = new if 2.0**-126 <= new <= 2.0**127 else v
        else:
            attr.f = rng.choice(ODD_FLOATS)
    elif t == A.INT:
        attr.i = rng.choice([*ODD_INTS, attr.i + 1, attr.i - 1, -attr.i, attr.i * 2])
    elif t == A.INTS and len(attr.ints):
        values = list(attr.ints)
        what = rng.randrange(4)
        if what == 0:
            values[rng.randrange(len(values))] = rng.choice(ODD_INTS)
        elif what == 1:
            i = rng.randrange(len(values))
            values[i] += rng.choice([-1, 1, 2])
        elif what == 2:
            values.pop()
        else:
            values.append(rng.choice(values))
        del attr.ints[:]
        attr.ints.extend(values)
    elif t == A.STRING:
        attr.s = rng.choice(STRING_VALUES).encode()
    elif t == A.FLOATS and len(attr.floats):
        attr.floats[rng.randrange(len(attr.floats))] = rng.choice([*ODD_FLOATS, 2.0, 1.5])


def _perturb_initializer(rng: random.Random, model) -> None:
    inits = list(model.graph.initializer)
    if not inits:
        return
    init = rng.choice(inits)
    arr = numpy_helper.to_array(init).copy()
    what = rng.randrange(4)
    if what == 0 and arr.size:  # one value to an extreme
        flat = arr.reshape(-1)
        if np.issubdtype(arr.dtype, np.integer):
            info = np.iinfo(arr.dtype)
            flat[rng.randrange(flat.size)] = rng.choice([info.min, info.max, 0, -1, 1, 2, 7])
        else:
            flat[rng.randrange(flat.size)] = rng.choice(ODD_FLOATS)
    elif what == 1:  # another dtype (float weights in an integer op, int64, int16)
        with np.errstate(invalid="ignore", over="ignore"):
            arr = arr.astype(rng.choice([np.float32, np.int16, np.int64, np.int32, np.int8]))
    elif what == 2 and arr.ndim:  # another shape
        arr = arr.reshape(-1)[: max(arr.size - 1, 0)] if rng.random() < 0.5 else \
            np.concatenate([arr.reshape(-1), arr.reshape(-1)[:1]])
    else:  # for shape operands: small integers
        if np.issubdtype(arr.dtype, np.integer) and arr.size:
            arr.reshape(-1)[rng.randrange(arr.size)] = rng.choice([0, -1, -2, 1, 2, 3, 100])
    new = numpy_helper.from_array(arr, init.name)
    init.CopyFrom(new)


def perturb(rng: random.Random, model, count: int | None = None):
    """A copy of the ONNX model with 1-3 perturbations (attributes, added attributes,
    initializers)."""
    m = copy.deepcopy(model)
    nodes = [n for n in m.graph.node if n.op_type != "Constant"]
    labels = []
    for _ in range(count or rng.choice([1, 1, 1, 2, 3])):
        what = rng.random()
        if what < 0.55 and nodes:
            node = rng.choice(nodes)
            attrs = list(node.attribute)
            if attrs and rng.random() < 0.85:
                attr = rng.choice(attrs)
                if rng.random() < 0.1:
                    node.attribute.remove(attr)
                    labels.append(f"drop {node.name}.{attr.name}")
                else:
                    _perturb_attr(rng, attr)
                    labels.append(f"{node.name}.{attr.name}")
            else:
                key = rng.choice(sorted(NEW_ATTRS))
                for a in list(node.attribute):
                    if a.name == key:
                        node.attribute.remove(a)
                node.attribute.append(helper.make_attribute(key, rng.choice(NEW_ATTRS[key])))
                labels.append(f"{node.name}+{key}")
        elif what < 0.8:
            _perturb_initializer(rng, m)
            labels.append("initializer")
        elif nodes:  # a scale attribute moved far: the extremes of the arithmetic
            node = rng.choice(nodes)
            scales = [a for a in node.attribute if a.name.startswith("scale") and
                      a.type == helper.AttributeProto.FLOAT and a.f > 0]
            if scales:
                a = rng.choice(scales)
                a.f = float(np.float32(math.ldexp(1.0, max(-126, min(
                    127, math.frexp(a.f)[1] - 1 + rng.choice(SCALE_STEPS))))))
                labels.append(f"{node.name}.{a.name}=2**{math.frexp(a.f)[1] - 1}")
    return m, "+".join(labels)


def pack_verdict(onnx_model, platform: str, keep_quant: bool, workdir: str):
    """(model.bin bytes or None, finding or None): tpacker may refuse with a ThinkerError
    only."""
    from seeds import pack_onnx

    from thinker.errors import ThinkerError

    try:
        with np.errstate(all="ignore"):
            return pack_onnx(onnx_model, platform, keep_quant, workdir), None
    except ThinkerError as exc:
        text = str(exc)
        if not text or "\n" in text.split(": ", 1)[0]:
            return None, f"tpacker message is not one line: {text[:300]!r}"
        return None, None
    except Exception:  # what the fuzzer looks for
        return None, "tpacker: " + traceback.format_exc(limit=-4)


def onnx_cases(rng: random.Random, seeds: dict, count: int):
    """``count`` perturbed seed models: (label, onnx model, platform, keep_quant)."""
    names = sorted(seeds)
    for k in range(count):
        name = rng.choice(names)
        build, platform, keep_quant = seeds[name]
        model, label = perturb(rng, _model(build))
        yield f"{name}:{label}#{k}", model, platform, keep_quant


_MODELS: dict = {}


def _model(build):
    if build not in _MODELS:
        _MODELS[build] = build()
    return _MODELS[build]
