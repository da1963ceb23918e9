"""The numpy executor: prepare every kernel once, then run the nodes in order.

``Executor.run`` takes a dict of input arrays (any batch size on axis 0) and returns a dict of
output arrays. Hooks observe every node (timing, dumping) without changing the results.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from thinker import qmath
from thinker.errors import ThinkerInputError
from thinker.errors import name as shown
from thinker.graph.ir import Graph, Node, Tensor
from thinker.ops import OPS
from thinker.ops.base import Kernel
from thinker.runtime.batch import batch_layout, run_in_samples
from thinker.runtime.dynamic import DynamicAxis, Variants


@dataclass(frozen=True)
class TensorSpec:
    """What a model input/output looks like: the static shape holds the model's batch size."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    exponent: int | None  # real value = int / 2**exponent; None for float tensors

    @classmethod
    def of(cls, t: Tensor) -> TensorSpec:
        return cls(t.name, np.dtype(t.dtype), tuple(t.shape), t.exponent)


class Hook:
    """Observer of a run. ``on_value`` sees every graph input and every node output, in order."""

    def on_value(self, name: str, value: np.ndarray) -> None:
        pass

    def on_node(self, node: Node, inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray],
                seconds: float) -> None:
        pass


@dataclass
class Step:
    node: Node
    kernel: Kernel
    macs: int  # at the model's static batch size


def _dtype_message(s: TensorSpec, given: np.dtype) -> str:
    """Why an input of dtype ``given`` is refused, and how to convert it correctly."""
    head = (f"input '{shown(s.name)}': dtype {given} given, {s.dtype} expected (shape "
            f"{list(s.shape)})")
    if np.issubdtype(given, np.floating) and np.issubdtype(s.dtype, np.integer) and \
            s.exponent is not None:
        bits = np.dtype(s.dtype).itemsize * 8
        return (f"{head}, quantized with exponent {s.exponent} (int = round(x * 2**"
                f"{s.exponent})); quantize the floats with model.quantize_inputs({{name: x}}) "
                f"(= thinker.qmath.quantize(x, {s.exponent}, {bits})), not .astype(np.{s.dtype}),"
                " which drops the scale")
    if np.issubdtype(given, np.integer) and np.issubdtype(s.dtype, np.floating):
        return f"{head}; give real values (float), e.g. ints / 2**q for your integers' exponent q"
    return f"{head}; convert with .astype(np.{s.dtype}) if the values fit its range"


def _quantize(s: TensorSpec, value, what: str) -> np.ndarray:
    arr = np.asarray(value)
    if np.issubdtype(s.dtype, np.floating):
        return arr.astype(s.dtype)
    if s.exponent is None:
        raise ThinkerInputError(f"{what} '{shown(s.name)}' is {s.dtype} without an exponent (not "
                                "a quantized value): give its integers directly")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ThinkerInputError(f"{what} '{shown(s.name)}': {arr.dtype} values given; give "
                                "real numbers")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise ThinkerInputError(f"{what} '{shown(s.name)}': the values contain NaN or inf, which "
                                "have no integer; replace them first")
    bits = np.dtype(s.dtype).itemsize * 8
    signed = np.issubdtype(s.dtype, np.signedinteger)
    return qmath.quantize(arr, s.exponent, bits, signed).astype(s.dtype)


SPLIT_MIN_MACS = 50_000_000  # per thread; measured on the MLPerf Tiny models at batch 64, 2 cores


class Executor:
    """Runs a Graph with numpy kernels.

    ``threads`` > 1 splits a batch across that many worker threads (numpy and BLAS release
    the GIL) when each part gets at least ``SPLIT_MIN_MACS`` of work (below that, the
    threads' handoffs and GIL turns cost more than they save); results are identical. Safe
    to call from many threads at once: a run keeps its values to itself and kernels keep
    their scratch buffers per thread (``ops.base.Scratch``)."""

    def __init__(self, graph: Graph, threads: int = 1):
        self.graph = graph
        self.threads = max(1, int(threads))
        self._pool = None
        self._pool_lock = threading.Lock()
        self.inputs = [TensorSpec.of(graph.tensors[n]) for n in graph.inputs]
        self.outputs = [TensorSpec.of(graph.tensors[n]) for n in graph.outputs]
        self.steps: list[Step] = []
        for node in graph.nodes:
            op = OPS[node.op_type]
            ins = [graph.tensors[n] if n else None for n in node.inputs]
            outs = [graph.tensors[n] for n in node.outputs]
            self.steps.append(Step(node, op.prepare(node, ins, outs), op.macs(node, ins, outs)))
        self._macs_per_sample = sum(s.macs for s in self.steps) // max(self.static_batch, 1)
        self._constants = {n: t.data for n, t in graph.tensors.items() if t.is_constant}
        self._last_use = self._last_uses()
        # per step: kernel, its arguments (a name to look up, or a constant's array bound in
        # place), output names, values it is the last to read. The loop without hooks reads
        # only these and never copies the constants: at batch 1 its per-op cost shows.
        self._fast = [(s.kernel,
                       tuple((False, self._constants[n]) if n in self._constants else
                             (True, n) if n else (False, None) for n in s.node.inputs),
                       tuple(s.node.outputs),
                       tuple(n for n in set(s.node.inputs) if n and self._last_use.get(n) == i))
                      for i, s in enumerate(self.steps)]
        self.batch_layout = batch_layout(graph)  # None: the batch is on axis 0 everywhere
        if any(getattr(s.kernel, "host", None) is not None for s in self.steps):
            from thinker.runtime.c_backend import host_library
            from thinker.runtime.host_chain import fuse

            self._fast = fuse(self._fast, graph.outputs, self._last_use,
                              lambda n: tuple(graph.tensors[n].shape), host_library(),
                              scalable=self.batch_layout is None and not graph.streams)
        self.streams = list(graph.streams)
        self._variants = Variants(graph, [DynamicAxis(*d) for d in graph.dynamic],
                                  lambda g: type(self)(g)) if graph.dynamic else None

    def _last_uses(self) -> dict[str, int]:
        """Index of the last step reading each activation, so values can be freed early."""
        last: dict[str, int] = {}
        for i, step in enumerate(self.steps):
            for name in step.node.inputs:
                if name and name not in self._constants:
                    last[name] = i
        for name in self.graph.outputs:
            last[name] = len(self.steps)
        return last

    @property
    def static_batch(self) -> int:
        return self.inputs[0].shape[0] if self.inputs and self.inputs[0].shape else 1

    def check_inputs(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not isinstance(feeds, dict):
            raise ThinkerInputError(f"inputs must be a dict {{name: array}}, got "
                                    f"{type(feeds).__name__}; model inputs are "
                                    f"{self._describe_inputs()}")
        expected = {s.name: s for s in self.inputs}
        unknown = sorted(shown(n) for n in set(feeds) - set(expected))
        missing = [shown(n) for n in expected if n not in feeds]
        if unknown or missing:
            raise ThinkerInputError(
                f"model inputs are {self._describe_inputs()}; "
                + (f"missing {missing}" if missing else "")
                + ("; " if missing and unknown else "")
                + (f"unknown {unknown}" if unknown else "")
            )
        checked = {}
        for name, value in feeds.items():
            s = expected[name]
            arr = np.asarray(value)
            if arr.dtype != s.dtype:
                raise ThinkerInputError(_dtype_message(s, arr.dtype))
            if arr.ndim != len(s.shape) or tuple(arr.shape[1:]) != tuple(s.shape[1:]):
                raise ThinkerInputError(
                    f"input '{shown(name)}': shape {list(arr.shape)} given, {list(s.shape)} "
                    "expected (any batch size on axis 0)"
                )
            checked[name] = arr
        return checked

    def _describe_inputs(self) -> str:
        return ", ".join(f"'{shown(s.name)}' {s.dtype}{list(s.shape)}" for s in self.inputs)

    def _batch_scale(self, feeds: dict[str, np.ndarray], where: str) -> int:
        """How many times the model's static batch the (checked) feeds hold; every input must
        hold the same multiple."""
        scale = None
        for s in self.inputs:
            if not s.shape:
                continue
            given, static = feeds[s.name].shape[0], s.shape[0]
            if static == 0 or given % static:
                raise ThinkerInputError(f"{where}: input '{shown(s.name)}' has batch {given}; "
                                        f"this model runs multiples of batch {static}")
            if scale is None:
                scale = given // static
            elif given // static != scale:
                first = self.inputs[0]
                raise ThinkerInputError(
                    f"{where}: input '{shown(s.name)}' has batch {given} but "
                    f"'{shown(first.name)}' has {feeds[first.name].shape[0]}; give every input "
                    "the same number of samples")
        return 1 if scale is None else scale

    # -- float <-> integer at the model's edges ----------------------------------------------

    def quantize_inputs(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Float arrays -> the integers this model takes: for an integer input with exponent
        ``q``, ``saturate(floor(x * 2**q + 0.5))`` in the input's dtype (``thinker.qmath.
        quantize``); float inputs are only converted to their dtype. Feed the result to
        ``run``."""
        specs = {s.name: s for s in self.inputs}
        result = {}
        for key, value in values.items():
            s = specs.get(key)
            if s is None:
                raise ThinkerInputError(f"quantize_inputs: '{shown(key)}' is not an input; "
                                        f"model inputs are {self._describe_inputs()}")
            result[key] = _quantize(s, value, "input")
        return result

    def dequantize_outputs(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Integer outputs -> their real values as float32 (``int / 2**q``, ``thinker.qmath.
        dequantize``); float outputs and integers without an exponent (e.g. indices) are
        returned unchanged. Takes what ``run`` returns."""
        specs = {s.name: s for s in self.outputs}
        result = {}
        for key, value in values.items():
            s = specs.get(key)
            if s is None:
                names = ", ".join(f"'{shown(o.name)}'" for o in self.outputs)
                raise ThinkerInputError(f"dequantize_outputs: '{shown(key)}' is not an output; "
                                        f"model outputs are {names}")
            arr = np.asarray(value)
            if s.exponent is None or not np.issubdtype(arr.dtype, np.integer):
                result[key] = arr
            else:
                result[key] = qmath.dequantize(arr, s.exponent)
        return result

    def run(self, feeds: dict[str, np.ndarray],
            hooks: Sequence[Hook] = ()) -> dict[str, np.ndarray]:
        """Run the model; returns every graph output as a C-contiguous array."""
        key = self._variants.key(feeds) if self._variants and isinstance(feeds, dict) else None
        if key is not None:  # another length on a dynamic axis: that length's model
            return self._variants.get(key).run(feeds, hooks)
        if self.batch_layout is not None:  # recurrent layouts: by groups of the static batch
            return run_in_samples(feeds, hooks, self.inputs, self.batch_layout,
                                  lambda f, h: self._run(self.check_inputs(f), h),
                                  self._constants, shown(self.graph.name or "model"))
        feeds = self.check_inputs(feeds)
        batch = min((v.shape[0] for v in feeds.values() if v.ndim), default=1)
        if batch != self.static_batch:  # a batch-B export runs another batch if samples never mix
            self.check_any_batch(batch, shown(self.graph.name or "model"))
        if self.threads > 1 and not hooks and batch >= 2 and self.static_batch == 1:
            parts = min(self.threads, batch,
                        batch * self._macs_per_sample // max(SPLIT_MIN_MACS, 1))
            if parts > 1:
                return self._run_split(feeds, parts)
        return self._run(feeds, hooks)

    @property
    def mixing_problem(self) -> str | None:
        """Why this model's samples mix (naming the op), or None (thinker.runtime.any_batch);
        computed once."""
        if not hasattr(self, "_mixing"):
            from thinker.runtime.any_batch import mixing_problem

            self._mixing = mixing_problem(self.graph)
        return self._mixing

    def check_any_batch(self, given: int, where: str) -> None:
        """Refuse ``given`` samples when the model was exported with batch B > 1 and an op
        mixes its samples; the error names the op and says to export with batch 1."""
        if self.static_batch > 1:
            from thinker.runtime.any_batch import check_any_batch

            check_any_batch(self.graph, given, where, self.mixing_problem)

    def _run_split(self, feeds: dict[str, np.ndarray], parts: int) -> dict[str, np.ndarray]:
        from concurrent.futures import ThreadPoolExecutor

        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads)
        bounds = np.linspace(0, next(iter(feeds.values())).shape[0], parts + 1).astype(int)
        jobs = [self._pool.submit(self._run,
                                  {n: v[bounds[k]:bounds[k + 1]] for n, v in feeds.items()}, ())
                for k in range(parts)]
        results = [j.result() for j in jobs]
        return {name: np.concatenate([r[name] for r in results]) for name in results[0]}

    def _run(self, feeds: dict[str, np.ndarray],
             hooks: Sequence[Hook]) -> dict[str, np.ndarray]:
        if not hooks:
            values: dict[str, np.ndarray] = dict(feeds)
            for kernel, args, outputs, release in self._fast:
                # (named, x): a value to look up; else x itself (a constant, or None)
                results = kernel(*[values[x] if named else x for named, x in args])
                for name, value in zip(outputs, results, strict=True):
                    values[name] = value
                for name in release:
                    del values[name]
            return {name: np.ascontiguousarray(values[name] if name in values else
                                               self._constants[name])
                    for name in self.graph.outputs}
        values = dict(self._constants)
        for name, arr in feeds.items():
            values[name] = arr
            for h in hooks:
                h.on_value(name, arr)
        last_use = self._last_use
        for i, step in enumerate(self.steps):
            node = step.node
            args = [values[n] if n else None for n in node.inputs]
            start = time.perf_counter()
            results = step.kernel(*args)
            seconds = time.perf_counter() - start
            for name, value in zip(node.outputs, results, strict=True):
                values[name] = value
            if hooks:
                for name, value in zip(node.outputs, results, strict=True):
                    for h in hooks:
                        h.on_value(name, value)
                for h in hooks:
                    h.on_node(node, args, results, seconds)
            for name in set(node.inputs):
                if name and last_use.get(name) == i:
                    del values[name]
        return {name: np.ascontiguousarray(values[name]) for name in self.graph.outputs}
