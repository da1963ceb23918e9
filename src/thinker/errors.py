"""One exception hierarchy for every user-facing failure (design §9).

The CLI prints ``str(error)`` on one line and exits with code 1; a traceback is only shown with
``--debug``. Messages name the file/node/tensor, the rule, the value and what to change.
"""

from __future__ import annotations


class ThinkerError(Exception):
    """Base class: a mistake in the user's model, device profile, files or inputs."""


class ThinkerModelError(ThinkerError):
    """The model itself is malformed, unsupported or breaks the arithmetic contract."""


class ThinkerDeviceError(ThinkerError):
    """The model breaks a limit of the target device profile."""


class ThinkerFormatError(ThinkerError):
    """A model.bin (or another serialized file) is corrupt, truncated or of an unknown version."""


class ThinkerInputError(ThinkerError):
    """Inputs given to an executor have the wrong name, size, shape or dtype."""
