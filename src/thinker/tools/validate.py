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

from thinker.errors import ThinkerInputError, printable
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
    details: dict[str, Mismatch] = field(default_factory=dict)  # every differing tensor
    sizes: dict[str, int] = field(default_factory=dict)  # elements compared per tensor

    def finish(self) -> None:
        """Set ``first_mismatch`` (in execution order) and ``mismatches`` from ``details``."""
        self.mismatches = len(self.details)
        self.first_mismatch = next((self.details[n] for n in self.compared
                                    if n in self.details), None)

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


CHUNK_BYTES = 256 << 20  # per side: every tensor of a chunk of the batch is kept to compare


def _sample_bytes(model: Executor) -> int:
    """Bytes of every tensor of one sample (an estimate; 1 MiB when the model has no graph)."""
    graph = getattr(model, "graph", None)
    if graph is None:
        return 1 << 20
    total = sum(t.nbytes for t in graph.tensors.values() if not t.is_constant)
    return max(1, total // max(model.static_batch, 1))


def compare_runs(reference: Executor, checked: Executor, ref_feeds: dict, chk_feeds: dict,
                 max_examples: int = 5) -> Comparison:
    """Run both models on the same inputs and compare every tensor both name. A large batch
    runs in chunks (memory stays bounded); the counts cover the whole batch."""
    batch = min((np.shape(v)[0] for v in [*ref_feeds.values(), *chk_feeds.values()]
                 if np.ndim(v)), default=1)
    per_sample = _sample_bytes(reference) + _sample_bytes(checked)
    chunk = batch if checked.static_batch != 1 or reference.static_batch != 1 else \
        max(1, CHUNK_BYTES // per_sample)
    if batch <= chunk:
        return compare_values(run_all(reference, ref_feeds), run_all(checked, chk_feeds),
                              checked, max_examples)
    total: Comparison | None = None
    for start in range(0, batch, chunk):
        result = compare_values(run_all(reference, _rows(ref_feeds, start, chunk)),
                                run_all(checked, _rows(chk_feeds, start, chunk)), checked,
                                max_examples, offset=start)
        total = result if total is None else _merge(total, result, max_examples)
    assert total is not None
    return total


def _rows(feeds: dict, start: int, count: int) -> dict:
    return {k: v[start:start + count] for k, v in feeds.items()}


def _first_indices(differs: np.ndarray, count: int) -> list[tuple[int, ...]]:
    """The first ``count`` indices where ``differs`` is true, without listing them all."""
    flat = differs.reshape(-1)
    found: list[int] = []
    step = 1 << 16
    for i in range(0, flat.size, step):
        found += [int(j) + i for j in np.flatnonzero(flat[i:i + step])[:count - len(found)]]
        if len(found) >= count:
            break
    return [tuple(int(v) for v in np.unravel_index(j, differs.shape)) for j in found]


def _merge(a: Comparison, b: Comparison, max_examples: int) -> Comparison:
    """Two chunks of one batch: per tensor, differing and total elements add up."""
    merged = Comparison(compared=a.compared, sizes={
        n: a.sizes.get(n, 0) + b.sizes.get(n, 0) for n in a.compared})
    for name in a.compared:
        x, y = a.details.get(name), b.details.get(name)
        if x is None and y is None:
            continue
        base = x or y
        assert base is not None
        examples = ((x.examples if x else []) + (y.examples if y else []))[:max_examples]
        merged.details[name] = Mismatch(name, base.op, (x.differing if x else 0) +
                                        (y.differing if y else 0), merged.sizes[name], examples)
    merged.finish()
    return merged


def compare_values(ref_values: dict, chk_values: dict, checked: Executor,
                   max_examples: int = 5, offset: int = 0) -> Comparison:
    """Compare every tensor both name, in the checked side's execution order. Values are
    compared as integers when both sides hold integers (linger captures int64). ``offset`` is
    added to the batch index of the examples (a chunk of a larger batch)."""
    graph = getattr(checked, "graph", None)
    nodes = graph.nodes if graph is not None else [s.node for s in checked.steps]
    producers = {o: n for n in nodes for o in n.outputs}
    result = Comparison()
    for name, value in chk_values.items():
        ref = ref_values.get(name)
        if ref is None:
            continue
        result.compared.append(name)
        result.sizes[name] = int(value.size)
        both_int = np.issubdtype(ref.dtype, np.integer) and np.issubdtype(value.dtype, np.integer)
        same_type = ref.dtype == value.dtype or both_int  # linger captures int64
        if ref.shape == value.shape and same_type and np.array_equal(ref, value):
            continue
        node = producers.get(name)
        op = node.label() if node else "graph input"
        if ref.shape != value.shape or not same_type:
            result.details[name] = Mismatch(name, op, int(value.size), int(value.size), [
                ((), f"{ref.dtype}{list(ref.shape)}", f"{value.dtype}{list(value.shape)}")])
            continue
        differs = ref != value
        count = int(np.count_nonzero(differs))
        examples = []
        for index in _first_indices(differs, max_examples):
            shown_index = (index[0] + offset, *index[1:]) if index else index
            examples.append((shown_index, ref[index].item(), value[index].item()))
        result.details[name] = Mismatch(name, op, count, int(value.size), examples)
    result.finish()
    return result


def describe(result: Comparison, reference: str, checked: str) -> str:
    if result.identical:
        return f"{len(result.compared)} tensors identical ({reference} vs {checked})"
    m = result.first_mismatch
    lines = [f"first mismatch (of {result.mismatches} differing tensors, {len(result.compared)} "
             f"compared): tensor '{printable(m.tensor, 120)}' produced by {m.op}: "
             f"{m.differing:,} of {m.total:,} elements differ"]
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
