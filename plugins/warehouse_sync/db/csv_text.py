"""PostgreSQL's ``COPY … (FORMAT csv)`` text into Arrow: how both modes read a source's rows in bulk.

Cursor mode parses each keyset page into the table's exact Arrow schema
(:func:`warehouse_sync.db.catalog.arrow_schema`; :mod:`warehouse_sync.sync.extract`), CDC mode's
snapshot into strings, each value PostgreSQL's text form (:mod:`warehouse_sync.cdc.changes`). Both
read PostgreSQL's CSV conventions the same way: an empty unquoted field is NULL, ``""`` the empty
string, ``t``/``f`` booleans; ``NULL``, ``NA`` and ``NaN`` are values.
"""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.csv as pacsv

__all__ = ["parse_csv_page"]


def parse_csv_page(data: bytes, schema: pa.Schema) -> pa.Table:
    """Parses one page of PostgreSQL ``COPY … (FORMAT csv)`` output into ``schema`` exactly.

    Args:
        data: Whole CSV rows, no header (a quoted value may hold newlines).
        schema: One field per CSV column, in order: the Arrow type each is parsed into.

    Returns:
        The rows, with ``schema``.

    Raises:
        pyarrow.ArrowInvalid: A value does not parse as its field's type (Arrow's message names the column).
    """
    table = pacsv.read_csv(
        io.BytesIO(data),
        read_options=pacsv.ReadOptions(column_names=schema.names, use_threads=False),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types={f.name: f.type for f in schema},
            null_values=[""],  # PostgreSQL's CSV NULL; "NULL", "NA", "NaN" are values
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["t"],
            false_values=["f"],
        ),
    )
    return pa.Table.from_arrays(table.columns, schema=schema)
