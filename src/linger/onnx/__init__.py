"""``linger.onnx.export``: the quantized model as an ONNX graph in the thinker dialect."""

from linger.onnx.exporter import capture, export

__all__ = ["capture", "export"]
