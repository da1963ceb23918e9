"""Where in the user's model the running op was written, for ONNX names and error messages.

``linger.init`` inserts a call of a ``LocationMarker`` module with the label
``"<module path>.<op>"`` before every node of the traced forward, so an op knows its source
without walking the Python stack. (A module call, not a plain function: it survives the
re-tracing torch.fx does when a pickled model is loaded.)"""

from __future__ import annotations

import threading

import torch.nn as nn

_state = threading.local()


def set_location(label: str) -> None:
    _state.label = label


def current_location() -> str:
    return getattr(_state, "label", "") or "model"


class LocationMarker(nn.Module):
    """``marker(label)`` sets the current location (no state, nothing in the state dict)."""

    def forward(self, label: str) -> None:
        set_location(label)
