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
    """Random inputs in range for both sides, carrying identical integers: where the checked
    model takes integers and the reference floats (tpacker removed the edge Quant), the floats
    are the exact dequantized integers."""
    rng = np.random.default_rng(seed)
    ref_feeds, chk_feeds = {}, {}
    for i, spec in enumerate(checked.inputs):
        shape = (batch, *spec.shape[1:])
        if np.issubdtype(spec.dtype, np.integer):
            info = np.iinfo(spec.dtype)
            value = rng.integers(info.min, info.max + 1, shape).astype(spec.dtype)
        else:
            value = rng.normal(size=shape).astype(spec.dtype)
        chk_feeds[spec.name] = value
        ref_spec = reference.inputs[i] if i < len(reference.inputs) else None
        if ref_spec is None:
            raise ThinkerInputError("the two models have different numbers of inputs")
        if ref_spec.dtype == spec.dtype:
            ref_feeds[ref_spec.name] = value
        elif np.issubdtype(spec.dtype, np.integer) and spec.exponent is not None:
            ref_feeds[ref_spec.name] = (value.astype(np.float64) * 2.0 ** -spec.exponent
                                        ).astype(ref_spec.dtype)
        else:
            raise ThinkerInputError(
                f"input {i}: reference '{ref_spec.name}' is {ref_spec.dtype}, checked "
                f"'{spec.name}' is {spec.dtype} without a known scale; give input files")
    return ref_feeds, chk_feeds


def compare_runs(reference: Executor, checked: Executor, ref_feeds: dict, chk_feeds: dict,
                 max_examples: int = 5) -> Comparison:
    ref_dump, chk_dump = DumpHook(keep=True), DumpHook(keep=True)
    reference.run(ref_feeds, hooks=[ref_dump])
    checked.run(chk_feeds, hooks=[chk_dump])
    producers = {o: n for n in checked.graph.nodes for o in n.outputs}
    result = Comparison()
    for name, value in chk_dump.values.items():  # execution order of the checked side
        ref = ref_dump.values.get(name)
        if ref is None:
            continue
        result.compared.append(name)
        if ref.shape == value.shape and ref.dtype == value.dtype and np.array_equal(ref, value):
            continue
        result.mismatches += 1
        if result.first_mismatch is not None:
            continue
        node = producers.get(name)
        op = node.label() if node else "graph input"
        if ref.shape != value.shape or ref.dtype != value.dtype:
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
