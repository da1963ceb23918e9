import os
import sys

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
SHARED_DATA = os.environ.get("THINKER_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))
RESNET18 = os.path.join(SHARED_DATA, "linger-resnet18", "resnet18_cifar100_linger.onnx")
RESNET18_INPUT = os.path.join(SHARED_DATA, "linger-resnet18", "input_int8_3x32x32.bin")

sys.path.insert(0, TESTS)


@pytest.fixture(scope="session")
def resnet18_path() -> str:
    if not os.path.exists(RESNET18):
        pytest.skip(f"shared data not found at {RESNET18}")
    return RESNET18
