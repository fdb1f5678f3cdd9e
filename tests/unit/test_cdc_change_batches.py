"""CDC change files are read in batches bounded by bytes as well as rows (``page_bytes``), so wide rows
never put a whole 50 000-row batch in memory."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from warehouse_sync.cdc.apply import READ_ROWS, _batch_rows


def test_wide_change_rows_are_read_a_few_at_a_time_and_narrow_ones_by_the_row_bound(tmp_path):
    wide = tmp_path / "wide.parquet"
    pq.write_table(pa.table({"id": list(range(100)), "body": [f"{i:05d}" * 2000 for i in range(100)]}), wide,
                   compression="none")
    rows = _batch_rows(pq.ParquetFile(wide), 50_000)
    assert 1 <= rows <= 5 and rows * 10_000 <= 60_000
    narrow = tmp_path / "narrow.parquet"
    pq.write_table(pa.table({"id": list(range(1000))}), narrow)
    assert _batch_rows(pq.ParquetFile(narrow), 64 << 20) == READ_ROWS
    assert _batch_rows(pq.ParquetFile(wide), 1) == 1
