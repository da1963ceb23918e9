"""linger's errors: part of thinker's one hierarchy (design §9), so a caller can catch
``ThinkerError`` around the whole flow from training to execution."""

from __future__ import annotations

from thinker.errors import ThinkerDeviceError, ThinkerError, ThinkerInputError, ThinkerModelError


class LingerError(ThinkerError):
    """Base class of every linger error."""


class LingerConfigError(LingerError):
    """A configuration key or value is unknown or out of range."""


class LingerDeviceError(LingerError, ThinkerDeviceError):
    """A layer breaks a rule of the target platform (conventional check)."""


class LingerUnsupportedError(LingerError, ThinkerModelError):
    """The model uses an op or module that linger cannot quantize or export."""


class LingerDataError(LingerError, ThinkerInputError):
    """The data a model is trained, calibrated or exported with cannot be used (NaN or inf
    values, a shape the model does not take)."""


class LingerStateError(LingerError):
    """A quantizer is used before it has seen data (no training or calibration yet)."""


class LingerCheckError(LingerUnsupportedError, LingerDeviceError):
    """The pre-flight check found both ops linger cannot quantize and device-rule violations
    (one error listing all of them; catch either class)."""
