"""Every op thinker runs, one module per family; importing this package registers them all."""

from thinker.ops import activation, conv, elementwise, linear, pool, quant, shape  # noqa: F401
from thinker.ops.base import OPS, Op, get_op

__all__ = ["OPS", "Op", "get_op"]
