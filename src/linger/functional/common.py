"""Helpers shared by the quantized torch-function implementations."""

from __future__ import annotations

import numpy as np

from linger.errors import LingerUnsupportedError
from linger.location import current_location
from thinker import qmath


def unsupported(what: str) -> LingerUnsupportedError:
    return LingerUnsupportedError(f"{what} at '{current_location()}' is not supported by linger")


def ints_of(value, n: int) -> tuple[int, ...]:
    """torch's geometry arguments (an int, or n values, or one value in a list) as n ints."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if len(values) == 1:
        values *= n
    return tuple(int(v) for v in values)


def storage(bits: int) -> np.dtype:
    return qmath.storage_dtype(bits)
