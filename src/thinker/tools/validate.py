"""thinker validate: run the same inputs through the exported ONNX and the packed model.bin
(and optionally any other executor), compare every tensor both name, and report the first
mismatch in execution order.

tpacker keeps tensor names through its rewrites (a fused conv writes its activation's output
name; a split conv's Concat writes the original output name), so tensors map back by name;
tensors a rewrite created (``*__part0`` ...) or removed (the pre-activation conv output) have
no counterpart and are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from thinker.errors import ThinkerInputError
from thinker.runtime import DumpHook
from thinker.runtime.executor import Executor


@dataclass
class Mismatch:
    tensor: str
    op: str  # "<op_type> '<node>'" producing it on the checked side
    differing: int
    total: int
    examples: list[tuple[tuple[int, ...], object, object]]  # index, reference, checked


@dataclass
class Comparison:
    compared: list[str] = field(default_factory=list)
    first_mismatch: Mismatch | None = None
    mismatches: int = 0

    @property
    def identical(self) -> bool:
        return self.first_mismatch is None


def random_inputs(reference: Executor, checked: Executor, batch: int,
                  seed: int) -> tuple[dict, dict]:
    """Random inputs in range for the checked model, and the same values for the reference
    (``reference_feeds``)."""
    rng = np.random.default_rng(seed)
    chk_feeds = {}
    for spec in checked.inputs:
        shape = (batch, *spec.shape[1:])
        if np.issubdtype(spec.dtype, np.integer):
            info = np.iinfo(spec.dtype)
            chk_feeds[spec.name] = rng.integers(info.min, info.max + 1, shape).astype(spec.dtype)
        else:
            chk_feeds[spec.name] = rng.normal(size=shape).astype(spec.dtype)
    return reference_feeds(reference, checked, chk_feeds), chk_feeds


def reference_feeds(reference: Executor, checked: Executor, chk_feeds: dict) -> dict:
    """The checked model's inputs in the reference's terms, carrying identical integers: where
    the checked model takes integers and the reference floats (tpacker removed the edge
    Quant), the floats are the exact dequantized integers."""
    if len(reference.inputs) != len(checked.inputs):
        raise ThinkerInputError("the two models have different numbers of inputs")
    ref_feeds = {}
    for i, (ref_spec, spec) in enumerate(zip(reference.inputs, checked.inputs, strict=True)):
        value = chk_feeds[spec.name]
        if ref_spec.dtype == spec.dtype:
            ref_feeds[ref_spec.name] = value
        elif np.issubdtype(spec.dtype, np.integer) and spec.exponent is not None:
            ref_feeds[ref_spec.name] = (value.astype(np.float64) * 2.0 ** -spec.exponent
                                        ).astype(ref_spec.dtype)
        else:
            raise ThinkerInputError(
                f"input {i}: reference '{ref_spec.name}' is {ref_spec.dtype}, checked "
                f"'{spec.name}' is {spec.dtype} without a known scale; give input files")
    return ref_feeds


def run_all(model: Executor, feeds: dict) -> dict[str, np.ndarray]:
    """Every tensor of one run, in execution order."""
    dump = DumpHook(keep=True)
    model.run(feeds, hooks=[dump])
    return dump.values


def compare_runs(reference: Executor, checked: Executor, ref_feeds: dict, chk_feeds: dict,
                 max_examples: int = 5) -> Comparison:
    return compare_values(run_all(reference, ref_feeds), run_all(checked, chk_feeds), checked,
                          max_examples)


def compare_values(ref_values: dict, chk_values: dict, checked: Executor,
                   max_examples: int = 5) -> Comparison:
    """Compare every tensor both name, in the checked side's execution order. Values are
    compared as integers when both sides hold integers (linger captures int64)."""
    producers = {o: n for n in checked.graph.nodes for o in n.outputs}
    result = Comparison()
    for name, value in chk_values.items():
        ref = ref_values.get(name)
        if ref is None:
            continue
        result.compared.append(name)
        both_int = np.issubdtype(ref.dtype, np.integer) and np.issubdtype(value.dtype, np.integer)
        same_type = ref.dtype == value.dtype or both_int  # linger captures int64
        if ref.shape == value.shape and same_type and np.array_equal(ref, value):
            continue
        result.mismatches += 1
        if result.first_mismatch is not None:
            continue
        node = producers.get(name)
        op = node.label() if node else "graph input"
        if ref.shape != value.shape or not same_type:
            result.first_mismatch = Mismatch(name, op, int(value.size), int(value.size), [
                ((), f"{ref.dtype}{list(ref.shape)}", f"{value.dtype}{list(value.shape)}")])
            continue
        diff = np.argwhere(ref != value)
        examples = [(tuple(int(i) for i in idx), ref[tuple(idx)].item(),
                     value[tuple(idx)].item()) for idx in diff[:max_examples]]
        result.first_mismatch = Mismatch(name, op, len(diff), int(value.size), examples)
    return result


def describe(result: Comparison, reference: str, checked: str) -> str:
    if result.identical:
        return f"{len(result.compared)} tensors identical ({reference} vs {checked})"
    m = result.first_mismatch
    lines = [f"first mismatch (of {result.mismatches} differing tensors, {len(result.compared)} "
             f"compared): tensor '{m.tensor}' produced by {m.op}: {m.differing:,} of "
             f"{m.total:,} elements differ"]
    for index, ref, got in m.examples:
        lines.append(f"  at {list(index)}: {reference} {ref}, {checked} {got}")
    return "\n".join(lines)


def linger_values(factory: str, checkpoint: str | None, feeds: dict) -> dict[str, np.ndarray]:
    """Every tensor linger's eval forward computes, by ONNX name. ``factory`` is
    ``module:function`` returning the quantized model (called with ``checkpoint`` if given)."""
    import importlib
    import os
    import sys

    module_name, sep, function = factory.partition(":")
    if not sep:
        raise ThinkerInputError(f"--linger {factory}: expected MODULE:FUNCTION")
    if os.getcwd() not in sys.path:  # a factory module next to the user, as python -m would
        sys.path.insert(0, os.getcwd())
    try:
        build = getattr(importlib.import_module(module_name), function)
    except (ImportError, AttributeError) as exc:
        raise ThinkerInputError(f"--linger {factory}: cannot import ({exc})") from None
    try:
        import torch

        import linger
    except ImportError:
        raise ThinkerInputError("--linger needs the training extra: pip install "
                                "'thinker[train]'") from None
    model = build(checkpoint) if checkpoint else build()
    args = [torch.from_numpy(np.asarray(v)) for v in feeds.values()]
    return linger.onnx.capture(model, args if len(args) > 1 else args[0],
                               input_names=list(feeds))
