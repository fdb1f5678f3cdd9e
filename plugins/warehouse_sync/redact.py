"""Source row values out of messages that reach audit rows and alerts.

A NOT NULL or CHECK violation makes PostgreSQL print the whole row it refused (``DETAIL: Failing row
contains (…)``), source values included; an error copied as it is would put them into
``warehouse_sync.audit`` (shown on the data-quality page) and into e-mail and Slack. Keys are kept
(``Key (id)=(5)``): they identify a row, as the drift samples do. No heavy import: the DAG file's
alert callbacks use it.
"""

from __future__ import annotations

import re
from typing import Any

# The row PostgreSQL prints after a NOT NULL or CHECK violation: up to the closing parenthesis that ends
# the message or precedes its next field (CONTEXT:, HINT:, ...); values may hold parentheses and newlines.
_FAILING_ROW = re.compile(r"Failing row contains \(.*?\)(?=\.?(?:\n[A-Z][A-Z ]*:|\s*\Z))", re.DOTALL)
REDACTED_ROW = "Failing row contains (values redacted)"


def redact(value: Any) -> Any:
    """``value`` with every ``Failing row contains (…)`` of a PostgreSQL message replaced by :data:`REDACTED_ROW`.

    Strings are redacted, lists, tuples and dicts redacted item by item; anything else is returned as it is.
    """
    if isinstance(value, str):
        return _FAILING_ROW.sub(REDACTED_ROW, value)
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v) for v in value)
    return value
