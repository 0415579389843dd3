"""How a missing testbed component is reported: a skip with a reason, or under CI a failure."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

MODE_ENV = "CORRAL_TESTBED"


def testbed_required() -> bool:
    return os.environ.get(MODE_ENV, "").strip().lower() == "required"


def component_unavailable(component: str, reason: str) -> NoReturn:
    """Skip the test (or fail it under CORRAL_TESTBED=required), with a one-line reason."""
    first_line = reason.strip().splitlines()[0] if reason.strip() else "unknown reason"
    if testbed_required():
        pytest.fail(f"{component} is required ({MODE_ENV}=required) but unavailable: {reason.strip()}", pytrace=False)
    pytest.skip(f"{component} unavailable: {first_line}")
