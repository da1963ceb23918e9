"""Records the eval forward as an ONNX graph in the thinker dialect (design §4).

While a recorder is active, every quantized op appends its node: inputs by name, integer
constants as initializers, attributes exactly as the executor reads them. Tensor names come
from where the op was written (``layer1.0.conv1``, ``layer1.0.add``), so they are stable
across runs; with ``capture=True`` the recorder also keeps every tensor's integers, which is
what linger computed in eval mode, to compare with the executor tensor by tensor.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from linger.errors import LingerError, LingerUnsupportedError
from linger.location import current_location
from linger.qtensor import QTensor

THINKER_DOMAIN = "thinker"
THINKER_OPS = {
    "Quant", "Dequant", "Requant", "Conv1dInt", "Conv2dInt", "ConvTranspose2dInt", "LinearInt",
    "BatchNorm2dInt", "AvgPool2dInt", "iqAdd", "iqSub", "iqMul", "iqCat",
    "iqDiv", "iqSum", "iqVar", "iqSigmoid",
    "iqTanh", "SoftmaxInt", "LogSoftmaxInt", "LayerNormInt", "BmmInt", "GluInt", "GRUInt",
    "LSTMInt",
    # standard names, but with quantization attributes (scale_w, ...) that onnx.checker refuses
    # on default-domain nodes; thinker reads them in any domain
    "PRelu", "Gather",
}

_state = threading.local()


def active() -> GraphRecorder | None:
    return getattr(_state, "recorder", None)


@contextmanager
def recording(recorder: GraphRecorder):
    if active() is not None:
        raise LingerError("an export is already running in this thread")
    _state.recorder = recorder
    try:
        yield recorder
    finally:
        _state.recorder = None


class GraphRecorder:
    def __init__(self, output_names: list[str] | None = None, capture: bool = False):
        self.output_names = list(output_names or [])
        self.capture = capture
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self.values: dict[str, np.ndarray] = {}
        self._used: set[str] = set(self.output_names or ["output"])  # reserved for outputs
        self._float_inputs: dict[int, tuple[str, torch.Tensor]] = {}

    # -- names -------------------------------------------------------------------------------

    def unique(self, hint: str) -> str:
        name, k = hint, 1
        while name in self._used:
            name, k = f"{hint}_{k}", k + 1
        self._used.add(name)
        return name

    def register_input(self, name: str, tensor: torch.Tensor) -> None:
        self._used.add(name)
        self._float_inputs[id(tensor)] = (name, tensor)  # keeps the tensor alive: ids stay unique
        elem = helper.np_dtype_to_tensor_dtype(np.dtype(str(tensor.dtype).split(".")[-1]))
        self.inputs.append(helper.make_tensor_value_info(name, elem, list(tensor.shape)))

    def float_input_name(self, tensor: torch.Tensor) -> str:
        entry = self._float_inputs.get(id(tensor))
        if entry is None or entry[1] is not tensor:
            raise LingerUnsupportedError(
                f"'{current_location()}' quantizes a float tensor that is not a model input: it "
                "was computed by an op linger does not quantize, so the executor could not "
                "compute it; quantize the whole path from the model input")
        return entry[0]

    # -- graph -------------------------------------------------------------------------------

    def constant(self, hint: str, array: np.ndarray) -> str:
        name = self.unique(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def add_node(self, op_type: str, inputs: list, outputs: list[QTensor], attrs: dict,
                 hint: str) -> None:
        in_names = [self._name_of(x) for x in inputs]
        out_names = []
        for i, out in enumerate(outputs):
            out.onnx_name = self.unique(hint if len(outputs) == 1 else f"{hint}:{i}")
            out_names.append(out.onnx_name)
            if self.capture:
                self.values[out.onnx_name] = out.ints()
        domain = THINKER_DOMAIN if op_type in THINKER_OPS else ""
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(helper.make_node(op_type, in_names, out_names, name=out_names[0],
                                           domain=domain, **attrs))

    def add_output(self, value: QTensor) -> None:
        """A model output: Dequant to float32 under the user's output name."""
        index = len(self.outputs)
        if index < len(self.output_names):
            name = self.output_names[index]
        else:
            name = "output" if index == 0 else self.unique(f"output_{index}")
        self.nodes.append(helper.make_node(
            "Dequant", [self._name_of(value)], [name], name=f"Dequant_{name}",
            domain=THINKER_DOMAIN, scale_o=2.0 ** value.exponent))
        self.outputs.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT,
                                                          list(value.shape)))

    def _name_of(self, x) -> str:
        if isinstance(x, str):
            return x
        if isinstance(x, QTensor) and x.onnx_name:
            return x.onnx_name
        raise LingerError(f"internal: an input of '{current_location()}' was never recorded")

    def model(self, opset_version: int, graph_name: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, graph_name, self.inputs, self.outputs,
                                  self.initializers)
        model = helper.make_model(graph, producer_name="linger", opset_imports=[
            helper.make_opsetid("", opset_version), helper.make_opsetid(THINKER_DOMAIN, 1)])
        return model


def record(op_type: str, inputs: list, outputs, hint: str | None = None, **attrs) -> None:
    """Append a node to the active recorder (no-op when not exporting)."""
    recorder = active()
    if recorder is None:
        return
    outs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    recorder.add_node(op_type, inputs, outs, attrs, hint or current_location())


def constant(hint: str, array: np.ndarray) -> str:
    recorder = active()
    assert recorder is not None
    return recorder.constant(hint, array)
