"""Reading the pipeline file: YAML in, :class:`~warehouse_sync.config.pipeline.SyncConfig` out.

Validation is pydantic's (the models in :mod:`.pipeline`); this module reads the file, applies the
``defaults:`` section under each entry, accepts the deprecated ``checks:`` and ``reconcile_full_table``
keys, and translates every ``ValidationError`` into one :class:`ConfigError` whose lines name the
file, the pipeline and the field (an unknown key lists the allowed ones), so that a bad entry is a
readable DAG import error.
"""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from warehouse_sync.config.pipeline import Alerts, AlertsSection, ConfigError, Pipeline, SyncConfig

_TOP_LEVEL_KEYS = ("alerts", "defaults", "pipelines")
_DEPRECATED_EXPECTATIONS_KEY = "checks"
_DEPRECATED_TABLE_CHECK_KEY = "reconcile_full_table"  # true -> per_run_table_check: full, false -> none


# The ``defaults:`` section: every optional Pipeline field, validated as on Pipeline.
_Defaults = create_model(
    "_Defaults",
    __config__=ConfigDict(extra="forbid", frozen=True),
    **{name: (field.annotation, field) for name, field in Pipeline.model_fields.items() if not field.is_required()},
)


def _model_at(model: type[BaseModel], path: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model whose fields the location ``path`` (below ``model``) names, if any."""
    for step in path:
        if isinstance(step, int):
            continue
        fields = {field.alias or name: field for name, field in model.model_fields.items()}
        if step not in fields:
            return None
        candidates = [fields[step].annotation]
        model = None
        while candidates:
            candidate = candidates.pop()
            if inspect.isclass(candidate) and issubclass(candidate, BaseModel):
                model = candidate
                break
            candidates.extend(get_args(candidate))
        if model is None:
            return None
    return model


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _problems(exc: ValidationError, model: type[BaseModel], where: str,
              renamed: dict[str, str] | None = None) -> list[str]:
    """Translates a pydantic ``ValidationError`` into ``"<where>, field 'x': <what>"`` lines."""
    problems = []
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        names = [str((renamed or {}).get(s, s)) if i == 0 else str(s)
                 for i, s in enumerate(loc) if not isinstance(s, int)]
        entries = "".join(f" entry {s + 1}" for s in loc if isinstance(s, int))
        field = f"'{'.'.join(names)}'{entries}" if names else ""
        kind = error["type"]
        if kind == "missing":
            what = "required"
        elif kind == "extra_forbidden":
            owner = _model_at(model, loc[:-1])
            allowed = sorted(f.alias or n for n, f in owner.model_fields.items()) if owner else []
            what = "unknown field" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
        elif kind in ("value_error", "assertion_error"):
            what = str(error["ctx"]["error"])
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            what = f"expected a mapping (got {_short(error['input'])})"
        else:
            what = f"{error['msg']} (got {_short(error['input'])})"
        problems.append(f"{where}, field {field}: {what}" if field else f"{where}: {what}")
    return problems


def _read(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read pipeline config: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc


def _pipeline_entry(
    raw: dict[str, Any], where: str, path: Path, problems: list[str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Handles the deprecated ``checks:`` key; returns the entry to validate and the field renames."""
    old = _DEPRECATED_EXPECTATIONS_KEY
    if old not in raw:
        return raw, {}
    if "expectations" in raw:
        problems.append(f"{where}, field '{old}': both '{old}' and 'expectations' given; keep only 'expectations'")
        return {k: v for k, v in raw.items() if k != old}, {}
    warnings.warn(f"{path}: {where}: the key '{old}' is deprecated; rename it to 'expectations'",
                  DeprecationWarning, stacklevel=3)
    return {("expectations" if k == old else k): v for k, v in raw.items()}, {"expectations": old}


def _table_check_entry(raw: dict[str, Any], where: str, path: Path, problems: list[str]) -> dict[str, Any]:
    """Translates the deprecated ``reconcile_full_table: true|false`` into ``per_run_table_check``."""
    old = _DEPRECATED_TABLE_CHECK_KEY
    if old not in raw:
        return raw
    rest = {k: v for k, v in raw.items() if k != old}
    if "per_run_table_check" in raw:
        problems.append(f"{where}, field '{old}': both '{old}' and 'per_run_table_check' given; "
                        "keep only 'per_run_table_check'")
        return rest
    if not isinstance(raw[old], bool):
        problems.append(f"{where}, field '{old}': expected true or false (got {_short(raw[old])})")
        return rest
    mode = "full" if raw[old] else "none"
    warnings.warn(f"{path}: {where}: the key '{old}' is deprecated; it means 'per_run_table_check: {mode}' "
                  "(the default, 'keys', finds deletes without reading every column)", DeprecationWarning, stacklevel=3)
    return {**rest, "per_run_table_check": mode}


def load_config(path: str | Path) -> SyncConfig:
    """Reads and validates the pipeline file.

    Args:
        path: The YAML file (the caller decides where it is).

    Returns:
        The validated configuration.

    Raises:
        ConfigError: Unreadable file, bad YAML, or invalid content; the message names the file, the
            pipeline (by name, or ``#N``) and the field of every problem found, joined by ``; ``.

    Warns:
        DeprecationWarning: A pipeline uses the old ``checks:`` key instead of ``expectations:``, or
            ``reconcile_full_table`` instead of ``per_run_table_check``.
    """
    path = Path(path)
    doc = _read(path)
    unknown = sorted(str(k) for k in doc if k not in _TOP_LEVEL_KEYS) if isinstance(doc, dict) else []
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {', '.join(unknown)}; "
                          f"allowed: {', '.join(_TOP_LEVEL_KEYS)}")
    if not isinstance(doc, dict) or not isinstance(doc.get("pipelines"), list):
        raise ConfigError(f"{path}: expected a mapping with a 'pipelines' list")
    problems: list[str] = []

    defaults = doc.get("defaults") or {}
    if isinstance(defaults, dict):
        defaults = _table_check_entry(defaults, "defaults", path, problems)
    try:
        _Defaults.model_validate(defaults)
    except ValidationError as exc:
        problems += _problems(exc, _Defaults, "defaults")
        defaults = {}

    pipelines: list[Pipeline] = []
    for index, raw in enumerate(doc["pipelines"]):
        name = raw.get("name") if isinstance(raw, dict) else None
        where = f"pipeline {name!r}" if isinstance(name, str) and name else f"pipeline #{index + 1}"
        if not isinstance(raw, dict):
            problems.append(f"{where}: expected a mapping, got {type(raw).__name__}")
            continue
        entry, renamed = _pipeline_entry(_table_check_entry(raw, where, path, problems), where, path, problems)
        try:
            pipelines.append(Pipeline.model_validate({**defaults, **entry}))
        except ValidationError as exc:
            problems += _problems(exc, Pipeline, where, renamed)

    seen: set[str] = set()
    for p in pipelines:
        if p.name in seen:
            problems.append(f"pipeline {p.name!r}, field 'name': used twice")
        seen.add(p.name)

    alerts = Alerts()
    if doc.get("alerts") is not None:
        try:
            alerts = AlertsSection.model_validate(doc["alerts"]).to_alerts()
        except ValidationError as exc:
            problems += _problems(exc, AlertsSection, "alerts")

    if problems:
        raise ConfigError(f"{path}: " + "; ".join(problems))
    return SyncConfig(path=path, pipelines=tuple(pipelines), alerts=alerts)
