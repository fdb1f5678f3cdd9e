"""A run of change messages decoded column by column into Arrow stages exactly what the message-by-message
decode stages, and any change of another shape falls back to it (no database)."""

from __future__ import annotations

import struct
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from warehouse_sync.cdc.changes import _stage_each, _Writer, staged_schema
from warehouse_sync.cdc.columnar import RUN_BYTES, stage_messages
from warehouse_sync.cdc.decode import Begin, Relation, RelationColumn, decode

CAPTURED = Path(__file__).parent / "data" / "pgoutput_changes.bin"  # tests/unit/test_pgoutput_decode.py's
OID = 16_384
RELATION = Relation(OID, "public", "items", "d", (
    RelationColumn("id", 20, -1, True), RelationColumn("note", 25, -1, False),
    RelationColumn("amount", 1700, -1, False), RelationColumn("updated_at", 1184, -1, False)))
SCHEMA = staged_schema(c.name for c in RELATION.columns)
T0 = datetime(2026, 12, 6, 3, 0, tzinfo=timezone.utc)


def tuple_data(values: list[str | None]) -> bytes:
    out = struct.pack(">h", len(values))
    for value in values:
        encoded = None if value is None else value.encode()
        out += b"n" if encoded is None else b"t" + struct.pack(">i", len(encoded)) + encoded
    return out


def change(kind: bytes, values: list[str | None], oid: int = OID) -> bytes:
    return kind + struct.pack(">I", oid) + (b"K" if kind == b"D" else b"N") + tuple_data(values)


def staged(tmp_path, name: str, run, begins, commit, relation=RELATION, kept=(0, 1, 2, 3), columnar=True):
    kept = list(kept)
    names = tuple(relation.columns[i].name for i in kept)
    (tmp_path / name).mkdir()
    writer = _Writer(tmp_path / name, 1_000)
    if columnar:
        table = stage_messages(run, begins, commit, relation, kept, staged_schema(names), 7)
        if table is None:
            return None
        writer.write(table)
    else:
        _stage_each(run, begins, commit, {relation.oid: relation}, {relation.oid: (kept, names)}, writer, 7,
                    {"decode": 0.0, "stage": 0.0})
    writer.flush()
    return pa.concat_tables([pq.read_table(f.path) for f in writer.written])


def mixed_run() -> tuple[list[bytes], list[tuple[int, int, datetime]]]:
    run = [change(b"I", ["1", "naïve café ☕", "12.50", "2026-12-06 03:00:00+00"]),
           change(b"U", ["2", None, "-0.01", "2026-12-06 03:00:01+00"]),
           change(b"D", ["3", None, None, None]),
           change(b"I", ["4", "", None, "2026-12-06 03:00:02+00"]),
           change(b"U", ["1", "x" * 70_000, "0", "2026-12-06 03:00:03+00"])]
    begins = [(1, 500, T0 + timedelta(seconds=1)), (3, 700, T0 + timedelta(seconds=2)),
              (3, 900, T0 + timedelta(seconds=3))]  # an empty transaction began at 3 too: 900 is 3's
    return run, begins


@pytest.mark.parametrize("kept", [(0, 1, 2, 3), (0, 2)], ids=["every column", "a column selection"])
def test_a_run_of_inserts_updates_and_key_deletes_stages_what_the_message_by_message_path_stages(tmp_path, kept):
    run, begins = mixed_run()
    columnar = staged(tmp_path, "columnar", run, begins, (100, T0), kept=kept)
    assert columnar is not None
    assert columnar.equals(staged(tmp_path, "each", run, begins, (100, T0), kept=kept, columnar=False))
    assert columnar.column("_op").to_pylist() == ["I", "U", "D", "I", "U"]
    assert columnar.column("_lsn").to_pylist() == [100, 500, 500, 900, 900]
    assert columnar.column("_seq").to_pylist() == [7, 8, 9, 10, 11]


@pytest.mark.parametrize("message", [
    change(b"I", ["1", "a", "1", "t"], oid=OID + 1),  # another relation
    b"U" + struct.pack(">I", OID) + b"K" + tuple_data(["1", None, None, None])
    + b"N" + tuple_data(["2", "a", "1", "t"]),
    b"I" + struct.pack(">I", OID) + b"N" + struct.pack(">h", 4) + b"t" + struct.pack(">i", 1) + b"1u" + b"nn",
    change(b"I", ["1", "a", "1", "t"])[:-3],  # ends inside its last value
    change(b"I", ["1", "a", "1", "t"]) + b"!",  # bytes after its tuple
    change(b"I", ["1", "a", "1", "t"]).replace(b"a", b"\xff"),  # not UTF-8
    change(b"I", ["1", "a", "1"]),  # fewer columns than the relation
], ids=["other relation", "update of the key", "unchanged TOAST value", "truncated", "trailing bytes",
        "not UTF-8", "columns"])
def test_a_change_of_another_shape_sends_the_whole_run_message_by_message(message):
    run, begins = mixed_run()
    assert stage_messages([*run, message], begins, (100, T0), RELATION, [0, 1, 2, 3], SCHEMA, 0) is None


def test_the_captured_stream_stages_the_same_either_way_where_its_shape_allows(tmp_path):
    data, messages, pos = CAPTURED.read_bytes(), [], 0
    while pos < len(data):
        (size,) = struct.unpack(">I", data[pos:pos + 4])
        messages.append(data[pos + 4:pos + 4 + size])
        pos += 4 + size
    relation = next(m for m in map(decode, messages) if isinstance(m, Relation))
    begin = decode(messages[0])
    assert isinstance(begin, Begin)
    inserts = [m for m in messages[:5] if m[:1] == b"I"]  # the first transaction: two inserts, one of 32 000 chars
    kept = list(range(len(relation.columns)))
    commit = (begin.final_lsn, begin.commit_time)
    columnar = staged(tmp_path, "columnar", inserts, [], commit, relation, kept)
    assert columnar is not None and columnar.num_rows == 2
    assert columnar.equals(staged(tmp_path, "each", inserts, [], commit, relation, kept, columnar=False))
    update_with_toast = [m for m in messages if m[:1] == b"U"][:1]  # leaves its TOASTed value unchanged
    assert stage_messages(update_with_toast, [], commit, relation, kept,
                          staged_schema(c.name for c in relation.columns), 0) is None


def test_a_run_of_more_than_twice_run_bytes_goes_message_by_message_to_bound_the_decodes_memory():
    run = [change(b"I", ["1", "x" * (2 * RUN_BYTES), "1", "t"])]
    assert stage_messages(run, [], (100, T0), RELATION, [0, 1, 2, 3], SCHEMA, 0) is None
    assert stage_messages([change(b"I", ["1", "x" * RUN_BYTES, "1", "t"])], [], (100, T0), RELATION,
                          [0, 1, 2, 3], SCHEMA, 0) is not None
