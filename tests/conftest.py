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
