"""The IR (Graph/Node/Tensor) and ONNX import."""

from thinker.graph.ir import Graph, Node, Tensor
from thinker.graph.onnx_import import import_model, infer_shapes, load_onnx

__all__ = ["Graph", "Node", "Tensor", "import_model", "infer_shapes", "load_onnx"]
