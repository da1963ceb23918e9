"""Quantized implementations of the torch functions a model calls on QTensors, registered in
``linger.qtensor.HANDLERS`` on import.

Each handler computes its result in one of two ways, chosen by the input's ``exact`` flag:

* exact (eval): integers through ``thinker.qmath``, or torch ops that are exact on integer
  values (max, clamp, reshape, ...), so the result is what the executor computes;
* training: the same values through differentiable torch ops;

and, when exporting, records its ONNX node.
"""

from linger.functional import activation, nonlinear, pooling, resize, tensor_ops

__all__ = ["activation", "nonlinear", "pooling", "resize", "tensor_ops"]
