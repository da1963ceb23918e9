import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from shared_data import RESNET18


@pytest.fixture(scope="session")
def resnet18_path() -> str:
    if not os.path.exists(RESNET18):
        pytest.skip(f"shared data not found at {RESNET18}")
    return RESNET18


@pytest.fixture(params=["compiled", "numpy"])
def kernel_set(request, monkeypatch):
    """Run a test with the numpy executor's compiled kernels where they apply (the default)
    and again with its numpy kernels only (``THINKER_HOST_KERNELS=0``), so an oracle test
    checks both."""
    monkeypatch.setenv("THINKER_HOST_KERNELS", "1" if request.param == "compiled" else "0")
    return request.param
