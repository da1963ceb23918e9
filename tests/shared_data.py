"""Where the shared real models live (tests import this; conftest adds tests/ to the path)."""

import os

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)


def _shared_data() -> str:
    """The shared model folder: $THINKER_SHARED_DATA, else ../shared/data next to the
    checkout, else the workplace's /work/shared/data."""
    candidates = [os.environ.get("THINKER_SHARED_DATA", ""),
                  os.path.join(ROOT, "..", "shared", "data"), "/work/shared/data"]
    return next((c for c in candidates if c and os.path.isdir(c)), candidates[1])


SHARED_DATA = _shared_data()
RESNET18 = os.path.join(SHARED_DATA, "linger-resnet18", "resnet18_cifar100_linger.onnx")
RESNET18_INPUT = os.path.join(SHARED_DATA, "linger-resnet18", "input_int8_3x32x32.bin")
