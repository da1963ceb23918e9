"""Activation quantizers: estimate one tensor's power-of-two exponent in training, freeze it for
eval and export.

* MOM: exponential moving average of the batch abs-max (momentum 0.1 by default); the
  exponent is ``round(bits - 1 - log2(range))``.
* TQT: a learned log2 threshold ``t``; the exponent is ``bits - 1 - ceil(t)``. It starts from
  the data: the calibration context, or else the first training batch.

Under torch.distributed every rank reduces the batch abs-max with MAX before using it, so the
statistics, hence the exponents, are identical on every rank (TQT thresholds are parameters:
DDP averages their gradients).

A float checkpoint has no quantizer state: loading one (even with ``strict=True``) leaves the
quantizers as they are.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
import torch.nn as nn

from linger.errors import LingerDataError, LingerStateError
from linger.fakequant import (
    fake_quantize,
    range_exponent,
    tqt_exponent,
    tqt_quantize,
)

_state = threading.local()


def calibrating() -> bool:
    return getattr(_state, "calibrating", False)


def synced_max(value: torch.Tensor) -> torch.Tensor:
    """The maximum of ``value`` over all ranks (itself when not distributed)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return value


class ActivationQuantizer(nn.Module):
    def __init__(self, bits: int, method: str = "MOM", momentum: float = 0.1, path: str = "",
                 round_mode: str = "floor_add"):
        super().__init__()
        self.bits, self.method, self.momentum, self.path = bits, method, momentum, path
        self.round_mode = round_mode  # how values round onto the grid (config round_mode)
        self.register_buffer("exponent", torch.zeros((), dtype=torch.int64))
        self.register_buffer("observed", torch.zeros((), dtype=torch.int64))
        if method == "MOM":
            self.register_buffer("running_range", torch.zeros(()))
        else:
            self.log2_threshold = nn.Parameter(torch.zeros(()))
        self._calibration_max = 0.0

    def extra_repr(self) -> str:
        state = f"exponent={int(self.exponent)}" if int(self.observed) else "not observed"
        return f"{self.method}, bits={self.bits}, {state}"

    # -- eval --------------------------------------------------------------------------------

    def frozen_exponent(self) -> int:
        if not int(self.observed):
            raise LingerStateError(
                f"quantizer of '{self.path}' has not seen any data: train (model.train()) or "
                "calibrate (with linger.calibration(model): model(x)) before eval or export")
        return int(self.exponent)

    # -- training ----------------------------------------------------------------------------

    def observe(self, x: torch.Tensor) -> int:
        """Update the statistics with ``x`` and return the exponent to use for it."""
        with torch.no_grad():
            batch_max = synced_max(x.detach().abs().max().float())
            if not torch.isfinite(batch_max):
                phase = "calibration" if calibrating() else "training"
                raise LingerDataError(
                    f"quantizer of '{self.path}': NaN or infinite values reached it during "
                    f"{phase}; "
                    "its range (and every scale after it) would be meaningless. Check the input "
                    "data for NaN/inf, and lower the learning rate if training diverged")
            if calibrating() and self.method == "TQT":
                self._calibration_max = max(self._calibration_max, float(batch_max))
                q = tqt_exponent(_log2_or_zero(self._calibration_max), self.bits)
            elif self.method == "MOM":
                if int(self.observed):
                    self.running_range.mul_(1 - self.momentum).add_(self.momentum * batch_max)
                else:
                    self.running_range.copy_(batch_max)
                q = range_exponent(float(self.running_range), self.bits)
            else:
                if not int(self.observed):
                    self.log2_threshold.fill_(_log2_or_zero(float(batch_max)))
                q = tqt_exponent(float(self.log2_threshold), self.bits)
            self.exponent.fill_(q)
            self.observed.fill_(1)
        return q

    def quantize(self, x: torch.Tensor, q: int) -> torch.Tensor:
        """Fake-quantize ``x`` at the exponent ``observe`` returned."""
        mode = getattr(self, "round_mode", "floor_add")
        if self.method == "TQT" and not calibrating():
            return tqt_quantize(x, self.log2_threshold, self.bits, mode)
        return fake_quantize(x, q, self.bits, mode)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        q = self.observe(x)
        return self.quantize(x, q), q

    # -- calibration and checkpoints ---------------------------------------------------------

    def begin_calibration(self) -> None:
        self._calibration_max = 0.0

    def end_calibration(self) -> None:
        if self.method == "TQT" and self._calibration_max > 0:
            with torch.no_grad():
                self.log2_threshold.fill_(math.log2(self._calibration_max))
                self.exponent.fill_(tqt_exponent(float(self.log2_threshold), self.bits))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        own = [prefix + k for k in (*self._buffers, *self._parameters)]
        fresh = not any(k in state_dict for k in own)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        if fresh:  # a float checkpoint: this quantizer keeps its state
            missing_keys[:] = [k for k in missing_keys if k not in own]


def _log2_or_zero(value: float) -> float:
    return math.log2(value) if value > 0 else 0.0


@contextmanager
def calibration(model: nn.Module) -> Iterator[nn.Module]:
    """Run forward passes inside to set every quantizer from data without training::

        with linger.calibration(model):
            for x in batches:
                model(x)

    MOM quantizers update their moving range; TQT thresholds start at the largest |value|
    seen. Gradients are off inside."""
    quantizers = [m for m in model.modules() if isinstance(m, ActivationQuantizer)]
    for q in quantizers:
        q.begin_calibration()
    _state.calibrating = True
    try:
        with torch.no_grad():
            yield model
    finally:
        _state.calibrating = False
        for q in quantizers:
            q.end_calibration()
