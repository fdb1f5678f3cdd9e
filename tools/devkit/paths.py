"""The checkout's folders, as the development tools see them (the runtime package never looks here)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
PLUGINS = REPO / "plugins"
TOOLS = REPO / "tools"
INCLUDE = REPO / "include"
CONFIG = INCLUDE / "pipelines.yaml"
TOOLS_SQL = INCLUDE / "sql"
