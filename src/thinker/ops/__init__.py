"""Every op thinker runs, one module per family; importing this package registers them all."""

from thinker.ops import (  # noqa: F401
    activation,
    conv,
    elementwise,
    linear,
    matmul,
    nonlinear,
    pool,
    quant,
    reduce,
    resize,
    rnn,
    shape,
)
from thinker.ops.base import OPS, Op, get_op

__all__ = ["OPS", "Op", "get_op"]
