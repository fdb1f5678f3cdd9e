"""The package's SQL files: every one the code names exists as package data, none is left unused, and
none pages with OFFSET (which skips or repeats rows when rows move during a run)."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

import pytest

from warehouse_sync.db.statements import load_sql

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
# A SQL file's name as the code spells it: "<room>/<name>.sql".
SQL_NAME = re.compile(r"""["']([a-z_]+/[a-z0-9_]+\.sql)["']""")


def package_sql_files() -> list[str]:
    root = files("warehouse_sync").joinpath("sql")
    return sorted(f"{room.name}/{f.name}" for room in root.iterdir() if room.is_dir()
                  for f in room.iterdir() if f.name.endswith(".sql"))


def names_used_in_plugins() -> set[str]:
    return {name for path in PLUGINS.rglob("*.py") for name in SQL_NAME.findall(path.read_text(encoding="utf-8"))}


def code_of(name: str) -> str:
    """The statement without its ``--`` comment lines."""
    return "\n".join(line for line in load_sql(name).as_string(None).splitlines() if not line.lstrip().startswith("--"))


def test_the_code_names_sql_files():
    assert {"sync/plan_boundaries.sql", "sync/extract_page.sql"} <= names_used_in_plugins()


@pytest.mark.parametrize("name", sorted(names_used_in_plugins()))
def test_every_sql_file_the_code_names_exists_as_package_data(name):
    assert code_of(name).strip()


def test_every_sql_file_of_the_package_is_used_by_the_code():
    assert set(package_sql_files()) - names_used_in_plugins() == set()


@pytest.mark.parametrize("name", package_sql_files())
def test_no_sql_file_uses_offset(name):
    assert not re.search(r"\bOFFSET\b", code_of(name).upper())


def test_planning_sql_uses_no_offset():
    for name in ("sync/plan_boundaries.sql", "sync/extract_page.sql"):
        assert "OFFSET" not in code_of(name).upper()


def test_an_unknown_sql_file_is_a_file_not_found_error():
    with pytest.raises(FileNotFoundError):
        load_sql("sync/window_count.sql")
