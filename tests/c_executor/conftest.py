"""Fixtures for the C executor tests: the host and sanitizer builds of executor/ (built once per
session with make; skipped with a reason where no C compiler exists)."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from c_harness import EXECUTOR, make


@pytest.fixture(scope="session")
def host_build() -> str:
    make()
    return os.path.join(EXECUTOR, "build", "host", "test_thinker")


@pytest.fixture(scope="session")
def sanitize_build() -> str:
    make("sanitize")
    return os.path.join(EXECUTOR, "build", "sanitize", "test_thinker")
