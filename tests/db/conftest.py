"""Fixtures shared by the database tests of the reconcile loop."""

from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import T0, create_lines, lines_pipeline, sync_window


@pytest.fixture
def synced(source, warehouse, tmp_path):
    """t_src.lines (1 200 rows, composite key ``order_id, line``) loaded into t_dst.lines by one run
    of the window ``[T0, T0 + 1 h)``; returns its pipeline."""
    create_lines(source)
    pipeline = lines_pipeline()
    sync_window(source, warehouse, pipeline, T0, T0 + timedelta(hours=1), tmp_path)
    return pipeline
