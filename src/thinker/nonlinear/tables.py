"""The fixed-point data of the non-linear kernels (``tables.toml``), loaded once."""

from __future__ import annotations

import functools
import os
import tomllib
from dataclasses import dataclass

import numpy as np

from thinker.errors import ThinkerModelError

TABLES_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tables.toml")
FAMILIES = ("venus", "arcs", "venusA")  # kernel families, in their C enum order
DEFAULT_PLATFORM = "venus"


@functools.cache
def _data() -> dict:
    with open(TABLES_PATH, "rb") as f:
        return tomllib.load(f)


def family_of(platform: str | None, where: str = "platform") -> str:
    """The kernel family a platform runs (``venus``, ``arcs`` or ``venusA``); names are
    case-insensitive, ``None`` is the default platform (venus, as the original)."""
    name = DEFAULT_PLATFORM if platform is None else str(platform)
    families = _data()["families"]
    family = families.get(name.lower()) or next(
        (f for f in FAMILIES if f.lower() == name.lower()), None)
    if family is None:
        raise ThinkerModelError(
            f"{where}: platform '{name}' has no non-linear kernels; use one of "
            f"{sorted(families)}")
    return family


@dataclass(frozen=True)
class PiecewiseLinear:
    """One sigmoid or tanh table (see tables.toml for the rule)."""

    input_q: int
    output_q: int
    bias_shift: int
    product_min: int | None
    bands: np.ndarray     # int64 [17]
    slopes: np.ndarray    # int64 [16]
    shifts: np.ndarray    # int64 [16]
    bias_pos: np.ndarray  # int64 [16]
    bias_neg: np.ndarray  # int64 [16]


@functools.cache
def pwl(family: str, function: str) -> PiecewiseLinear:
    t = _data()["pwl"][family][function]
    arrays = {k: np.array(t[k], dtype=np.int64)
              for k in ("bands", "slopes", "shifts", "bias_pos", "bias_neg")}
    return PiecewiseLinear(int(t["input_q"]), int(t["output_q"]), int(t["bias_shift"]),
                           t.get("product_min"), **arrays)


def softmax() -> dict:
    return _data()["softmax"]


@functools.cache
def layernorm() -> tuple[np.ndarray, np.ndarray]:
    """(normalize [n, 3] int64 rows of mask, shift, q1; rsqrt_q15 [768] int64)."""
    t = _data()["layernorm"]
    return np.array(t["normalize"], dtype=np.int64), \
        np.array(t["rsqrt_q15"], dtype=np.int64)
