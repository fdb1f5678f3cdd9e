"""The pgoutput decoder on messages captured from a real PostgreSQL 18 (``tools/devkit/capture_pgoutput.py``)."""

from __future__ import annotations

import struct
from datetime import timezone
from pathlib import Path

import pyarrow as pa
import pytest

from warehouse_sync.cdc.apply import _conform
from warehouse_sync.cdc.changes import META_FIELDS, pg_text_array
from warehouse_sync.cdc.decode import (
    UNCHANGED,
    Begin,
    Change,
    Commit,
    DecodeError,
    Relation,
    decode,
    lsn_to_int,
    lsn_to_text,
)

CAPTURED = Path(__file__).parent / "data" / "pgoutput_changes.bin"


def captured_messages() -> list:
    data, messages, pos = CAPTURED.read_bytes(), [], 0
    while pos < len(data):
        (size,) = struct.unpack(">I", data[pos:pos + 4])
        messages.append(decode(data[pos + 4:pos + 4 + size]))
        pos += 4 + size
    return messages


def test_the_captured_stream_decodes_into_four_transactions_in_order():
    kinds = [type(m).__name__ if not isinstance(m, Change) else m.op for m in captured_messages()]
    assert kinds == ["Begin", "Relation", "I", "I", "Commit", "Begin", "U", "Commit", "Begin", "U", "Commit",
                     "Begin", "D", "Commit"]


def test_begin_and_commit_carry_the_same_commit_lsn_and_a_utc_commit_time():
    messages = captured_messages()
    pairs = [(b, c) for b, c in zip(messages, messages[1:] + [None]) if isinstance(b, Begin)]
    commits = [m for m in messages if isinstance(m, Commit)]
    for begin, commit in zip([p[0] for p in pairs], commits):
        assert begin.final_lsn == commit.commit_lsn < commit.end_lsn
        assert begin.commit_time == commit.commit_time and begin.commit_time.tzinfo == timezone.utc
    assert [b.final_lsn for b, _ in pairs] == sorted(b.final_lsn for b, _ in pairs)


def test_a_relation_message_names_columns_types_and_the_key():
    relation = next(m for m in captured_messages() if isinstance(m, Relation))
    assert (relation.schema, relation.name, relation.replica_identity) == ("public", "capture_types", "d")
    assert [(c.name, c.type_oid, c.type_modifier, c.is_key) for c in relation.columns] == [
        ("id", 20, -1, True), ("line", 23, -1, False), ("status", 1042, 5, False), ("priority", 1042, 19, False),
        ("price", 1700, (15 << 16 | 2) + 4, False), ("day", 1082, -1, False), ("comment", 1043, 83, False),
        ("body", 25, -1, False), ("flag", 16, -1, False), ("ratio", 701, -1, False), ("updated_at", 1184, -1, False)]


def test_insert_values_arrive_in_text_form_with_nulls():
    first, second = [m for m in captured_messages() if isinstance(m, Change) and m.op == "I"]
    assert first.new[:7] == ("1", "7", "O", "1-URGENT       ", "1234.56", "1998-08-02", "naïve café")
    assert len(first.new[7]) == 32_000 and first.new[8:] == ("t", "0.5", "2026-11-20 10:00:00.123456+00")
    assert second.new == ("2", "1", *[None] * 8, "2026-11-20 10:00:01+00") and second.old is None


def test_an_update_marks_an_unchanged_toasted_value_and_sends_no_old_key():
    update = [m for m in captured_messages() if isinstance(m, Change) and m.op == "U"][0]
    assert update.new[2] == "F" and update.new[4] == "-0.01" and update.new[7] is UNCHANGED
    assert update.old is None


def test_an_update_of_the_key_sends_the_old_key_and_a_delete_sends_only_the_key():
    key_change = [m for m in captured_messages() if isinstance(m, Change) and m.op == "U"][1]
    assert key_change.new[0] == "3" and key_change.old == ("2", *[None] * 10)
    delete = next(m for m in captured_messages() if isinstance(m, Change) and m.op == "D")
    assert delete.new is None and delete.old == ("1", *[None] * 10)


@pytest.mark.parametrize("data, message", [
    (b"S\x00\x00\x00\x01", "unknown pgoutput message type 'S'"),
    (b"B\x00\x00", "ends at byte 3"),
    (b"I\x00\x00\x00\x01N\x00\x01b\x00\x00\x00\x01x", "binary values are never requested"),
    (b"I\x00\x00\x00\x01X", "expected b'N'"),
])
def test_bad_bytes_fail_naming_the_message_and_the_offset(data, message):
    with pytest.raises(DecodeError, match=message):
        decode(data)


def test_lsn_text_round_trips():
    assert lsn_to_int("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert lsn_to_text(lsn_to_int("0/1EF7DE8")) == "0/1EF7DE8"


def test_column_lists_become_postgres_text_array_literals():
    assert pg_text_array([]) is None
    assert pg_text_array(["body", 'a"b', "c\\d"]) == '{"body","a\\"b","c\\\\d"}'


def test_columns_a_staged_file_lacks_are_added_as_null_and_listed_unchanged():
    schema = pa.schema([*META_FIELDS, pa.field("id", pa.string())])
    batch = pa.RecordBatch.from_pylist(
        [{"_op": "U", "_lsn": 5, "_seq": 0, "_commit_time": None, "_unchanged": '{"body"}', "id": "1"},
         {"_op": "I", "_lsn": 5, "_seq": 1, "_commit_time": None, "_unchanged": None, "id": "2"}], schema=schema)
    out = _conform(batch, ["id", "body", "tag"])
    assert out.column("_unchanged").to_pylist() == ['{"body","body","tag"}', '{"body","tag"}']
    assert out.column("tag").to_pylist() == [None, None] and out.schema.names[-3:] == ["id", "body", "tag"]
