"""Source row values never leave through PostgreSQL's error messages (issue 25, case 17)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from warehouse_sync.model import Plan, Window
from warehouse_sync.redact import REDACTED_ROW, redact

CHECK = ('new row for relation "items" violates check constraint "no_card"\n'
         "DETAIL:  Failing row contains (a, 1, card (4111)\n1111, null).")


def test_the_failing_row_is_cut_even_when_its_values_hold_parentheses_and_newlines():
    first_line = 'new row for relation "items" violates check constraint "no_card"'
    assert redact(CHECK) == f"{first_line}\nDETAIL:  {REDACTED_ROW}."


def test_the_fields_after_the_failing_row_and_the_key_of_a_unique_violation_are_kept():
    text = "DETAIL:  Failing row contains (1, secret).\nCONTEXT:  COPY items, line 1"
    assert redact(text) == f"DETAIL:  {REDACTED_ROW}.\nCONTEXT:  COPY items, line 1"
    unique = 'duplicate key value violates unique constraint "items_pkey"\nDETAIL:  Key (id)=(5) already exists.'
    assert redact(unique) == unique


def test_nested_details_are_redacted_item_by_item_and_other_values_kept():
    detail = {"error": CHECK, "lines": [CHECK], "rows": 3, "pair": ("x", CHECK)}
    out = redact(detail)
    assert "4111" not in json.dumps(out) and out["rows"] == 3 and out["pair"][0] == "x"


def test_a_plans_warnings_and_alerts_survive_the_xcom_round_trip():
    plan = Plan(Window(None, datetime(2026, 1, 1, tzinfo=timezone.utc)), "why", (), warnings=("w",), alerts=("a",))
    assert Plan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
