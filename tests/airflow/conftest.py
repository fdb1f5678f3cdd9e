"""Fixtures of the Airflow layer's DAG-run tests."""

from __future__ import annotations

import pytest

from devkit import airflow_local as runner


@pytest.fixture
def anchor():
    """The current window's start, taken when the test runs (not at import) with time left before its end."""
    return runner.window_with_time_left()
