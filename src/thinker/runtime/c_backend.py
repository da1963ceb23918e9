"""The C executor (executor/) behind the numpy executor's interface, through ctypes.

``load_c("model.bin")`` returns a ``CExecutor``: ``.inputs``/``.outputs`` (TensorSpec),
``.run(feeds, hooks=())``. The library is ``$THINKER_C_LIBRARY`` when set; in a source
checkout ``executor/build/host/libthinker.so``, built with ``make -C executor`` on first use
(and rebuilt when a C source is newer); in an installed wheel the copy setup.py compiled into
the package (``thinker/runtime/_libthinker*``).

The C executor runs the model's static batch B. Another batch runs in groups of B, one after
the other (any count: the last group padded with zero samples, cut again, when no op mixes
samples: thinker.runtime.any_batch); hooks then see every tensor with the samples
concatenated on axis 0, as with numpy.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence

import numpy as np

from thinker.errors import ThinkerError, ThinkerFormatError, ThinkerInputError, ThinkerModelError
from thinker.errors import name as printable_name
from thinker.graph.ir import Node
from thinker.runtime.executor import Executor, Hook, Step, TensorSpec

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
EXECUTOR_DIR = os.path.join(ROOT, "executor")
DEFAULT_LIBRARY = os.path.join(EXECUTOR_DIR, "build", "host", "libthinker.so")

MAX_DIMS = 6
MAX_MEMORY = 4
# model.bin dtype codes; int4 (7) is reported as int8, as the numpy reader unpacks it
NUMPY_DTYPES = {1: np.int8, 2: np.uint8, 3: np.int16, 4: np.int32, 5: np.int64, 6: np.float32,
                7: np.int8}
# status codes whose cause is the file itself (thinker.h)
FORMAT_STATUSES = {2, 3, 4, 5, 6, 7}


class _TensorInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("id", ctypes.c_uint32), ("dtype", ctypes.c_uint32),
                ("ndim", ctypes.c_uint32), ("dims", ctypes.c_uint32 * MAX_DIMS),
                ("exponent", ctypes.c_int32), ("has_exponent", ctypes.c_uint32),
                ("nbytes", ctypes.c_uint32), ("memory", ctypes.c_uint32),
                ("flags", ctypes.c_uint32)]


class _OpInfo(ctypes.Structure):
    _fields_ = [("type", ctypes.c_char_p), ("name", ctypes.c_char_p),
                ("n_inputs", ctypes.c_uint32), ("n_outputs", ctypes.c_uint32)]


class _Request(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_uint32), ("size", ctypes.c_uint32),
                ("alignment", ctypes.c_uint32)]


class _Plan(ctypes.Structure):
    _fields_ = [("count", ctypes.c_uint32), ("request", _Request * MAX_MEMORY)]


class _Memory(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_uint32), ("base", ctypes.c_void_p), ("size", ctypes.c_size_t)]


class _Message(ctypes.Structure):
    _fields_ = [("text", ctypes.c_char * 160)]


_LOCK = threading.Lock()
_LIBS: dict[str, ctypes.CDLL] = {}


def packaged_library() -> str | None:
    """The library a wheel carries (setup.py builds it next to this module), if any."""
    import glob

    here = os.path.dirname(os.path.abspath(__file__))
    found = sorted(glob.glob(os.path.join(here, "_libthinker*.so")) +
                   glob.glob(os.path.join(here, "_libthinker*.pyd")) +
                   glob.glob(os.path.join(here, "_libthinker*.dylib")))
    return found[0] if found else None


def _source_checkout() -> bool:
    return os.path.isfile(os.path.join(EXECUTOR_DIR, "Makefile"))


def library_path() -> str:
    """$THINKER_C_LIBRARY, else the source checkout's build, else the installed package's."""
    env = os.environ.get("THINKER_C_LIBRARY")
    if env:
        return env
    if _source_checkout():
        return DEFAULT_LIBRARY
    return packaged_library() or DEFAULT_LIBRARY


def build_library() -> None:
    """``make -C executor`` (host library), with a clear error when it cannot be built."""
    if not _source_checkout():
        raise ThinkerError(
            "this thinker installation has no C executor library (the wheel was built without a "
            "C compiler); reinstall from a wheel built with one, set THINKER_C_LIBRARY to a "
            "built libthinker, or use backend='numpy'")
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None or shutil.which("make") is None:
        raise ThinkerError(
            f"the C executor library {DEFAULT_LIBRARY} is not built and no C compiler ('{cc}') "
            "or make is available; install a C compiler (e.g. apt-get install gcc make) or use "
            "backend='numpy'")
    result = subprocess.run(["make", "-C", EXECUTOR_DIR], capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise ThinkerError(f"building the C executor failed (make -C {EXECUTOR_DIR}):\n"
                           f"{result.stdout[-2000:]}{result.stderr[-2000:]}")


def _stale(path: str) -> bool:
    """The default library is missing or older than an executor source (a checkout moved on)."""
    if not os.path.exists(path):
        return True
    built = os.path.getmtime(path)
    for folder in ("src", "include", "host"):
        for base, _, files in os.walk(os.path.join(EXECUTOR_DIR, folder)):
            if any(os.path.getmtime(os.path.join(base, f)) > built for f in files):
                return True
    return False


def _library() -> ctypes.CDLL:
    path = library_path()
    with _LOCK:
        if path in _LIBS:
            return _LIBS[path]
        if path != DEFAULT_LIBRARY and not os.path.exists(path):
            raise ThinkerError(f"THINKER_C_LIBRARY={path} does not exist")
        if path == DEFAULT_LIBRARY and _stale(path):
            build_library()
        lib = ctypes.CDLL(path)
        _declare(lib)
        _LIBS[path] = lib
        return lib


_HOST: list = []  # [library or None], decided once per process
_HOST_LOCK = threading.Lock()


@contextlib.contextmanager
def host_kernels(enabled: bool) -> Iterator[None]:
    """Executors loaded inside this block use the compiled host kernels (the default where
    the CPU has them) or not: it sets ``THINKER_HOST_KERNELS``, which both the numpy executor
    and the host C executor read when a model is loaded, and restores it after."""
    old = os.environ.get("THINKER_HOST_KERNELS")
    os.environ["THINKER_HOST_KERNELS"] = "1" if enabled else "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ["THINKER_HOST_KERNELS"]
        else:
            os.environ["THINKER_HOST_KERNELS"] = old


def host_library() -> ctypes.CDLL | None:
    """The library for the numpy executor's compiled kernels (executor/host), or None where
    it cannot be had (no compiler, a wheel built without it) or ``THINKER_HOST_KERNELS=0``:
    the numpy kernels then run, with the same integers."""
    if os.environ.get("THINKER_HOST_KERNELS", "1") == "0":
        return None
    if _HOST:
        return _HOST[0]
    with _HOST_LOCK:
        if _HOST:
            return _HOST[0]
        try:
            lib = _library()
            lib.thinker_host_features.restype = ctypes.c_int
            for name in ("thinker_host_conv_s8", "thinker_host_depthwise_s8",
                         "thinker_host_mean_rows",
                         "thinker_host_conv_work_bytes", "thinker_host_depthwise_work_bytes"):
                fn = getattr(lib, name)
                fn.argtypes = [ctypes.c_void_p]
                fn.restype = ctypes.c_int64 if name.endswith("_bytes") else ctypes.c_int
            lib.thinker_host_run_chain.argtypes = [ctypes.c_void_p, ctypes.c_int32]
            lib.thinker_host_run_chain.restype = ctypes.c_int
            i32 = ctypes.c_int32
            lib.thinker_host_packed_weight_bytes.argtypes = [i32, i32, i32]
            lib.thinker_host_packed_weight_bytes.restype = ctypes.c_int64
            lib.thinker_host_pack_conv_weights.argtypes = [ctypes.c_void_p, i32, i32, i32,
                                                           ctypes.c_void_p]
            lib.thinker_host_pack_conv_weights.restype = None
        except (ThinkerError, OSError, AttributeError):
            lib = None
        _HOST.append(lib)
    return _HOST[0]


def _declare(lib: ctypes.CDLL) -> None:
    p, u32, vp = ctypes.POINTER, ctypes.c_uint32, ctypes.c_void_p
    signatures = {
        "thinker_initialize": [],
        "thinker_get_memory_plan": [vp, ctypes.c_size_t, p(_Plan), p(_Message)],
        "thinker_model_init": [p(vp), vp, ctypes.c_size_t, p(_Memory), u32, p(_Message)],
        "thinker_model_release": [vp],
        "thinker_executor_create": [p(vp), vp],
        "thinker_executor_release": [vp],
        "thinker_get_input_count": [vp, p(u32)],
        "thinker_get_output_count": [vp, p(u32)],
        "thinker_get_input_info": [vp, u32, p(_TensorInfo)],
        "thinker_get_output_info": [vp, u32, p(_TensorInfo)],
        "thinker_set_input": [vp, u32, vp, ctypes.c_size_t],
        "thinker_forward": [vp],
        "thinker_forward_op": [vp, u32],
        "thinker_get_output": [vp, u32, p(vp), p(ctypes.c_size_t)],
        "thinker_get_op_count": [vp, p(u32)],
        "thinker_get_op_info": [vp, u32, p(_OpInfo)],
        "thinker_get_op_tensor": [vp, u32, ctypes.c_int, u32, p(u32)],
        "thinker_get_tensor_info": [vp, u32, p(_TensorInfo)],
        "thinker_get_tensor_data": [vp, u32, p(vp), p(ctypes.c_size_t)],
        "thinker_update_shape": [vp, u32, u32, u32],
        "thinker_get_dynamic_axis": [vp, u32, u32, p(u32), p(u32), p(u32), p(u32)],
        "thinker_reset": [vp],
        "thinker_get_stream_info": [vp, p(u32), p(u32)],
    }
    for name, args in signatures.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = ctypes.c_int
    lib.thinker_status_name.argtypes = [ctypes.c_int]
    lib.thinker_status_name.restype = ctypes.c_char_p
    lib.thinker_executor_message.argtypes = [vp]
    lib.thinker_executor_message.restype = ctypes.c_char_p


def _aligned(nbytes: int, alignment: int) -> tuple[np.ndarray, int]:
    """A zeroed numpy buffer and the address inside it with the requested alignment."""
    alignment = max(int(alignment), 16)
    raw = np.zeros(nbytes + alignment, dtype=np.uint8)
    address = raw.ctypes.data
    return raw, address + (-address) % alignment


class CExecutor(Executor):
    """A model.bin on the C executor, with the numpy executor's interface."""

    def __init__(self, path: str):
        self.path = path
        self._lib = lib = _library()
        self._check(lib.thinker_initialize(), "initialize")
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise ThinkerFormatError(f"{path}: cannot read ({exc.strerror})") from None
        self._bin_block, bin_address = _aligned(len(data), 16)
        ctypes.memmove(bin_address, data, len(data))
        plan, message = _Plan(), _Message()
        self._check(lib.thinker_get_memory_plan(bin_address, len(data), ctypes.byref(plan),
                                                ctypes.byref(message)), "memory plan", message)
        self.memory_plan = [(r.kind, r.size, r.alignment) for r in plan.request[:plan.count]]
        memories = (_Memory * MAX_MEMORY)()
        self._blocks = []
        for i, r in enumerate(plan.request[:plan.count]):
            block, address = _aligned(r.size, r.alignment)
            self._blocks.append(block)
            memories[i] = _Memory(r.kind, address, r.size)
        model = ctypes.c_void_p()
        self._check(lib.thinker_model_init(ctypes.byref(model), bin_address, len(data), memories,
                                           plan.count, ctypes.byref(message)), "init", message)
        self._model = model
        exe = ctypes.c_void_p()
        self._check(lib.thinker_executor_create(ctypes.byref(exe), model), "create executor")
        self._exe = exe
        n_in, n_out, n_ops = ctypes.c_uint32(), ctypes.c_uint32(), ctypes.c_uint32()
        lib.thinker_get_input_count(exe, ctypes.byref(n_in))
        lib.thinker_get_output_count(exe, ctypes.byref(n_out))
        lib.thinker_get_op_count(model, ctypes.byref(n_ops))
        self._input_ids = [self._io_info(lib.thinker_get_input_info, i).id
                           for i in range(n_in.value)]
        self._output_ids = [self._io_info(lib.thinker_get_output_info, i).id
                            for i in range(n_out.value)]
        self._tensors: dict[int, TensorSpec] = {}
        self.inputs = [self._spec(i) for i in self._input_ids]
        self.outputs = [self._spec(i) for i in self._output_ids]
        self._ops = []
        for k in range(n_ops.value):
            info = _OpInfo()
            lib.thinker_get_op_info(model, k, ctypes.byref(info))
            ins = [self._op_tensor(k, 0, s) for s in range(info.n_inputs)]
            outs = [self._op_tensor(k, 1, s) for s in range(info.n_outputs)]
            self._ops.append((info.type.decode(), info.name.decode(), ins, outs))
        self._steps: list[Step] | None = None
        self._lock = threading.Lock()
        # dynamic axes (index, axis, min, max, factor) and the carried states (thinker.h)
        self.dynamic_axes = []
        for index in range(n_in.value):
            for axis in range(len(self.inputs[index].shape)):
                lo, hi, f, now = (ctypes.c_uint32() for _ in range(4))
                refs = [ctypes.byref(v) for v in (lo, hi, f, now)]
                if lib.thinker_get_dynamic_axis(exe, index, axis, *refs) == 0:
                    self.dynamic_axes.append((index, axis, lo.value, hi.value, f.value))
        count, state_bytes = ctypes.c_uint32(), ctypes.c_uint32()
        lib.thinker_get_stream_info(exe, ctypes.byref(count), ctypes.byref(state_bytes))
        self.state_bytes = state_bytes.value
        self.streams = list(self.graph.streams) if count.value else []

    # -- plumbing ---------------------------------------------------------------------------

    def _check(self, status: int, what: str, message: _Message | None = None) -> None:
        if status == 0:
            return
        name = self._lib.thinker_status_name(status).decode()
        detail = message.text.decode(errors="replace") if message is not None else \
            (self._lib.thinker_executor_message(self._exe).decode(errors="replace")
             if getattr(self, "_exe", None) else "")
        text = f"{self.path}: C executor {what} failed: {name}" + (f": {detail}" if detail else "")
        if status in FORMAT_STATUSES:
            raise ThinkerFormatError(text)
        if status == 11:
            raise ThinkerInputError(text)
        raise ThinkerModelError(text)

    def _io_info(self, fn, index: int) -> _TensorInfo:
        info = _TensorInfo()
        self._check(fn(self._exe, index, ctypes.byref(info)), "query I/O")
        return info

    def _op_tensor(self, op: int, is_output: int, slot: int) -> int:
        tid = ctypes.c_uint32()
        self._lib.thinker_get_op_tensor(self._model, op, is_output, slot, ctypes.byref(tid))
        return tid.value

    def _spec(self, tid: int) -> TensorSpec:
        if tid not in self._tensors:
            info = _TensorInfo()
            self._lib.thinker_get_tensor_info(self._model, tid, ctypes.byref(info))
            self._tensors[tid] = TensorSpec(info.name.decode(), np.dtype(NUMPY_DTYPES[info.dtype]),
                                            tuple(info.dims[:info.ndim]),
                                            info.exponent if info.has_exponent else None)
        return self._tensors[tid]

    def _read(self, tid: int) -> np.ndarray:
        spec = self._spec(tid)
        address, nbytes = ctypes.c_void_p(), ctypes.c_size_t()
        self._lib.thinker_get_tensor_data(self._exe, tid, ctypes.byref(address),
                                          ctypes.byref(nbytes))
        raw = ctypes.string_at(address.value, nbytes.value) if nbytes.value else b""
        return np.frombuffer(raw, dtype=spec.dtype).reshape(spec.shape).copy()

    # -- the Executor interface -------------------------------------------------------------

    @property
    def steps(self) -> list[Step]:
        """Nodes (with MACs) for hooks such as ProfileHook; MACs come from the Python op
        definitions read from the same model.bin."""
        if self._steps is None:
            macs = [0] * len(self._ops)
            try:
                from thinker.ops import OPS
                from thinker.resource.reader import read_model

                graph = read_model(self.path).to_graph()
                for k, node in enumerate(graph.nodes):
                    ins = [graph.tensors[n] if n else None for n in node.inputs]
                    outs = [graph.tensors[n] for n in node.outputs]
                    macs[k] = OPS[node.op_type].macs(node, ins, outs)
            except (ThinkerError, KeyError, ValueError, IndexError):
                pass  # MACs are informative only
            self._steps = [Step(self._node(k), None, macs[k]) for k in range(len(self._ops))]
        return self._steps

    @property
    def graph(self):
        """The model's Graph, read from model.bin once (for the any-batch analysis)."""
        if getattr(self, "_graph", None) is None:
            from thinker.resource.reader import read_model

            self._graph = read_model(self.path).to_graph()
        return self._graph

    def _node(self, k: int) -> Node:
        op_type, name, ins, outs = self._ops[k]
        return Node(op_type, name, [self._spec(i).name if i != 0xFFFFFFFF else "" for i in ins],
                    [self._spec(i).name for i in outs])

    @property
    def batch_layout(self):
        """Where each tensor holds the batch, for models with ops that do not keep it on axis 0
        (GRUInt/LSTMInt states; thinker.runtime.batch), else None; computed once."""
        if not hasattr(self, "_batch_layout"):
            from thinker.ops import OPS
            from thinker.ops.base import Op
            from thinker.runtime.batch import batch_layout

            declaring = any(type(OPS[op_type]).batch_axes is not Op.batch_axes
                            for op_type, *_ in self._ops if op_type in OPS)
            self._batch_layout = batch_layout(self.graph) if declaring else None
        return self._batch_layout

    def _update_shapes(self, feeds: dict[str, np.ndarray]) -> None:
        """thinker_update_shape for every dynamic axis whose length ``feeds`` changes; the C
        executor refuses a length outside MIN:MAX:FACTOR (one line naming the input)."""
        changed = False
        for index, axis, *_ in self.dynamic_axes:
            arr = feeds.get(self.inputs[index].name) if isinstance(feeds, dict) else None
            if arr is None or np.ndim(arr) <= axis:
                continue
            length = int(np.shape(arr)[axis])
            if length != self.inputs[index].shape[axis]:
                status = self._lib.thinker_update_shape(self._exe, index, axis, length)
                if status:
                    detail = self._lib.thinker_executor_message(self._exe).decode(
                        errors="replace")
                    raise ThinkerInputError(f"{printable_name(self.path)}: {detail}")
                changed = True
        if changed:  # every tensor's shape may follow
            self._tensors.clear()
            self.inputs = [self._spec(i) for i in self._input_ids]
            self.outputs = [self._spec(i) for i in self._output_ids]

    def stream(self) -> CStream:
        """The C executor's own streaming (tpacker --isstream): it carries the states between
        calls; ``run`` feeds chunks, ``reset()`` starts over."""
        return CStream(self)

    def run(self, feeds: dict[str, np.ndarray],
            hooks: Sequence[Hook] = ()) -> dict[str, np.ndarray]:
        if self.dynamic_axes:
            with self._lock:
                self._update_shapes(feeds)
        if self.batch_layout is not None:  # recurrent layouts: by groups of the static batch
            from thinker.runtime.batch import run_in_samples

            return run_in_samples(feeds, hooks, self.inputs, self.batch_layout,
                                  lambda f, h: self._run_once(self.check_inputs(f), h), {},
                                  printable_name(self.path))
        feeds = self.check_inputs(feeds)
        static = self.static_batch
        given = {v.shape[0] for v in feeds.values() if v.ndim}
        if static > 1 and len(given) == 1 and given != {static}:  # any batch (any_batch.py)
            (n,) = given
            self.check_any_batch(n, printable_name(self.path))
            if n % static:
                from thinker.runtime.any_batch import run_padded

                return run_padded(feeds, hooks, static, self.run)
        scale = self._batch_scale(feeds, printable_name(self.path))
        if scale == 1:
            return self._run_once(feeds, hooks)
        # groups of the static batch, one after the other (the C executor runs static shapes)
        per_sample = [self._run_once({k: v[i * static:(i + 1) * static]
                                      for k, v in feeds.items()}, hooks, True)
                      for i in range(scale)]
        if hooks:
            self._replay(per_sample, hooks)
        return {s.name: np.concatenate([r[0][s.name] for r in per_sample]) for s in self.outputs}

    def _run_once(self, feeds, hooks, collect: bool = False):
        # one model's arenas and scratch serve one call at a time; ctypes releases the GIL
        with self._lock:
            return self._run_locked(feeds, hooks, collect)

    def _run_locked(self, feeds, hooks, collect: bool):
        lib, exe = self._lib, self._exe
        for index, tid in enumerate(self._input_ids):
            arr = np.ascontiguousarray(feeds[self._spec(tid).name])
            self._check(lib.thinker_set_input(exe, index, arr.ctypes.data, arr.nbytes),
                        "set input")
        trace = []
        if not hooks:
            self._check(lib.thinker_forward(exe), "forward")
        else:
            values = [(self._spec(t).name, self._read(t)) for t in self._input_ids]
            if not collect:
                for name, value in values:
                    for h in hooks:
                        h.on_value(name, value)
            for k, (_, _, _, outs) in enumerate(self._ops):
                start = time.perf_counter()
                self._check(lib.thinker_forward_op(exe, k), "forward")
                seconds = time.perf_counter() - start
                results = [self._read(t) for t in outs]
                if collect:
                    trace.append((k, results, seconds))
                    continue
                self._notify(k, results, seconds, hooks)
            if collect:
                trace.insert(0, values)
        outputs = {self._spec(t).name: self._read(t) for t in self._output_ids}
        return (outputs, trace) if collect else outputs

    def _notify(self, k: int, results, seconds: float, hooks) -> None:
        node = self.steps[k].node
        args = [None] * len(node.inputs)  # input values are not kept
        for h in hooks:
            for name, value in zip(node.outputs, results, strict=True):
                h.on_value(name, value)
            h.on_node(node, args, results, seconds)

    def _replay(self, per_sample, hooks) -> None:
        """Hooks see whole-batch tensors: every sample's value concatenated on axis 0."""
        traces = [r[1] for r in per_sample]
        for i, (name, _) in enumerate(traces[0][0]):
            value = np.concatenate([t[0][i][1] for t in traces])
            for h in hooks:
                h.on_value(name, value)
        for step in range(1, len(traces[0])):
            k = traces[0][step][0]
            results = [np.concatenate([t[step][1][j] for t in traces])
                       for j in range(len(traces[0][step][1]))]
            self._notify(k, results, sum(t[step][2] for t in traces), hooks)

    def close(self) -> None:
        if getattr(self, "_exe", None):
            self._lib.thinker_executor_release(self._exe)
            self._exe = None
        if getattr(self, "_model", None):
            self._lib.thinker_model_release(self._model)
            self._model = None

    def __del__(self):
        with contextlib.suppress(Exception):  # the library may be gone at interpreter exit
            self.close()


class CStream:
    """A stream on the C executor: the executor keeps the states in their planned arena slots
    and copies each state output over its history input after every forward (thinker.h,
    thinker_reset). ``run`` takes the non-state inputs (any allowed chunk length) and returns
    the non-state outputs; the interface of thinker.runtime.stream.Stream."""

    def __init__(self, executor: CExecutor):
        if not executor.streams:
            raise ThinkerInputError(f"{printable_name(executor.path)}: this model has no "
                                    "streaming states; pack it with tpacker --isstream "
                                    "split_h|split_w")
        self.executor = executor
        histories = {h for h, _ in executor.streams}
        states = {s for _, s in executor.streams}
        self._feed = [i for i, tid in enumerate(executor._input_ids)
                      if executor._spec(tid).name not in histories]
        self._read = [tid for tid in executor._output_ids
                      if executor._spec(tid).name not in states]
        self.state_bytes = executor.state_bytes
        self.reset()

    @property
    def inputs(self) -> list[TensorSpec]:
        return [self.executor.inputs[i] for i in self._feed]

    @property
    def outputs(self) -> list[TensorSpec]:
        return [self.executor._spec(t) for t in self._read]

    def reset(self) -> None:
        """Start a new stream: every state back to zero."""
        e = self.executor
        with e._lock:
            e._check(e._lib.thinker_reset(e._exe), "reset")

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        e = self.executor
        names = [s.name for s in self.inputs]
        if not isinstance(feeds, dict) or sorted(feeds) != sorted(names):
            given = sorted(feeds) if isinstance(feeds, dict) else type(feeds).__name__
            raise ThinkerInputError(f"{printable_name(e.path)}: a stream takes {names} (the "
                                    f"states are carried by the executor); got {given}")
        with e._lock:
            e._update_shapes(feeds)
            for index in self._feed:
                spec = e.inputs[index]
                arr = np.ascontiguousarray(feeds[spec.name])
                if arr.dtype != spec.dtype or arr.shape != spec.shape:
                    raise ThinkerInputError(
                        f"input '{printable_name(spec.name)}': {arr.dtype}{list(arr.shape)} "
                        f"given, {spec.dtype}{list(spec.shape)} expected")
                e._check(e._lib.thinker_set_input(e._exe, index, arr.ctypes.data, arr.nbytes),
                         "set input")
            e._check(e._lib.thinker_forward(e._exe), "forward")
            return {e._spec(t).name: e._read(t) for t in self._read}


def load_c(path: str) -> CExecutor:
    """Load a model.bin on the C executor."""
    if not os.path.exists(path):
        raise ThinkerFormatError(f"{path}: no such model file")
    return CExecutor(path)


__all__ = ["CExecutor", "CStream", "build_library", "library_path", "load_c"]
