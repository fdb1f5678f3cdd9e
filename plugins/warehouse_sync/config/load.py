"""Reading the pipeline file: YAML in, :class:`~warehouse_sync.config.pipeline.SyncConfig` out.

Validation is pydantic's (the models in :mod:`.pipeline`); this module reads the file, applies the
``defaults:`` section under each entry (a nested ``cdc:`` block key by key, every other field as a
whole), accepts the deprecated ``checks:``, ``reconcile_full_table`` and flat CDC (``slot_*``) keys,
and translates every ``ValidationError`` into one :class:`ConfigError` whose lines name the
file, the pipeline and the field (an unknown key lists the allowed ones), so that a bad entry is a
readable DAG import error.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from warehouse_sync.config.alerts import Alerts, AlertsSection
from warehouse_sync.config.pipeline import DEPRECATED_CDC_KEYS, ConfigError, Pipeline, SyncConfig

_TOP_LEVEL_KEYS = ("alerts", "defaults", "pipelines")
_DEPRECATED_EXPECTATIONS_KEY = "checks"
_DEPRECATED_TABLE_CHECK_KEY = "reconcile_full_table"  # true -> per_run_table_check: full, false -> none


# The ``defaults:`` section: every optional Pipeline field, validated as on Pipeline.
_DEFAULT_FIELDS: dict[str, Any] = {
    name: (field.annotation, field) for name, field in Pipeline.model_fields.items() if not field.is_required()
}
_Defaults = create_model(
    "_Defaults",
    __config__=ConfigDict(extra="forbid", frozen=True),
    **_DEFAULT_FIELDS,
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
        found: type[BaseModel] | None = None
        while candidates:
            candidate = candidates.pop()
            if inspect.isclass(candidate) and issubclass(candidate, BaseModel):
                found = candidate
                break
            candidates.extend(get_args(candidate))
        if found is None:
            return None
        model = found
    return model


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _renamed(names: list[str], renamed: dict[str, str]) -> list[str]:
    """``names`` with its longest prefix that ``renamed`` knows (by dotted path) spelled as the file spelled it."""
    for end in range(len(names), 0, -1):
        old = renamed.get(".".join(names[:end]))
        if old is not None:
            return [old, *names[end:]]
    return names


def _problems(exc: ValidationError, model: type[BaseModel], where: str,
              renamed: dict[str, str] | None = None) -> list[str]:
    """Translates a pydantic ``ValidationError`` into ``"<where>, field 'x': <what>"`` lines.

    ``renamed`` maps a field path the model knows (``expectations``, ``cdc.chunk_changes``) to the
    deprecated key the file gave it as, so that the message names what the file says.
    """
    problems = []
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        names = _renamed([str(s) for s in loc if not isinstance(s, int)], renamed or {})
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


def _cdc_entry(
    raw: dict[str, Any], where: str, path: Path, problems: list[str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Moves the deprecated flat keys (``slot_chunk_changes``, ...) into the nested ``cdc:`` block.

    Returns the entry to validate and the field renames (``cdc.chunk_changes`` -> ``slot_chunk_changes``).
    """
    flat = [old for old in DEPRECATED_CDC_KEYS if old in raw]
    if not flat:
        return raw, {}
    rest = {k: v for k, v in raw.items() if k not in DEPRECATED_CDC_KEYS}
    block = raw.get("cdc", {})
    if not isinstance(block, dict):
        return rest, {}  # validation names the bad 'cdc' value
    nested, renamed = dict(block), {}
    for old in flat:
        new = DEPRECATED_CDC_KEYS[old]
        if new in block:
            problems.append(f"{where}, field '{old}': both '{old}' and 'cdc.{new}' given; keep only 'cdc.{new}'")
            continue
        warnings.warn(f"{path}: {where}: the key '{old}' is deprecated; move it into the 'cdc:' block as "
                      f"'cdc.{new}'", DeprecationWarning, stacklevel=3)
        nested[new] = raw[old]
        renamed[f"cdc.{new}"] = old
    return {**rest, "cdc": nested}, renamed


def _over_defaults(defaults: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """The entry over the ``defaults:`` section: its own fields win; a ``cdc:`` block merges key by key."""
    merged = {**defaults, **entry}
    if isinstance(defaults.get("cdc"), dict) and isinstance(entry.get("cdc"), dict):
        merged["cdc"] = {**defaults["cdc"], **entry["cdc"]}
    return merged


@dataclass(frozen=True)
class ConfigRead:
    """The pipeline file as read by :func:`read_config`: its valid pipelines, and its bad entries apart.

    Attributes:
        config: The file's alerts and every valid pipeline, in file order.
        problems: One line per problem of a bad entry, each naming the file, the pipeline and the
            field (an entry with a problem is left out of :attr:`config`; so are both entries of a
            name used twice, or of a target two pipelines write).
    """

    config: SyncConfig
    problems: tuple[str, ...] = ()

    @property
    def error(self) -> ConfigError | None:
        """The bad entries' problems as one :class:`ConfigError` (``None`` when every entry is valid)."""
        return ConfigError(f"{self.config.path}: " + "; ".join(self.problems)) if self.problems else None


def _conflicts(pipelines: list[tuple[int, Pipeline]]) -> tuple[list[str], set[int]]:
    """Names used twice, and targets two pipelines write (same warehouse connection and table).

    Returns:
        The problems (each names both entries), and the file positions of the entries involved.
    """
    problems: list[str] = []
    involved: set[int] = set()
    by_name: dict[str, list[int]] = {}
    by_target: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for index, p in pipelines:
        by_name.setdefault(p.name, []).append(index)
        by_target.setdefault((p.warehouse_conn_id, str(p.target)), []).append((index, p.name))
    for name, positions in by_name.items():
        if len(positions) > 1:
            problems.append(f"pipeline {name!r}, field 'name': used twice (entries "
                            + ", ".join(f"#{i + 1}" for i in positions) + ")")
            involved.update(positions)
    for (conn_id, target), writers in by_target.items():
        names = sorted({name for _, name in writers})
        if len(writers) > 1 and len(names) > 1:
            problems.append(f"pipelines {' and '.join(repr(n) for n in names)}, field 'target': both write "
                            f"{target} in connection {conn_id!r}; each warehouse table has one pipeline "
                            "(give one of them another target)")
            involved.update(i for i, _ in writers)
    return problems, involved


def read_config(path: str | Path) -> ConfigRead:
    """Reads the pipeline file, keeping the valid pipelines when some entries are bad.

    What the DAG file uses: every valid pipeline gets its DAGs, and the bad entries are reported
    apart (:attr:`ConfigRead.problems`) so that one bad entry does not take the others down.

    Args:
        path: The YAML file (the caller decides where it is).

    Returns:
        The valid pipelines and alerts, and the problems of the bad entries.

    Raises:
        ConfigError: A problem of the whole file (unreadable, bad YAML, unknown top-level key, no
            ``pipelines`` list, an invalid ``defaults:`` or ``alerts:`` section): no pipeline can
            be trusted then. The message names the file and every such problem.

    Warns:
        DeprecationWarning: As :func:`load_config`.
    """
    path = Path(path)
    doc = _read(path)
    unknown = sorted(str(k) for k in doc if k not in _TOP_LEVEL_KEYS) if isinstance(doc, dict) else []
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {', '.join(unknown)}; "
                          f"allowed: {', '.join(_TOP_LEVEL_KEYS)}")
    if not isinstance(doc, dict) or not isinstance(doc.get("pipelines"), list):
        raise ConfigError(f"{path}: expected a mapping with a 'pipelines' list")
    file_problems: list[str] = []

    defaults = doc.get("defaults") or {}
    defaults_renamed: dict[str, str] = {}
    if isinstance(defaults, dict):
        defaults, defaults_renamed = _cdc_entry(_table_check_entry(defaults, "defaults", path, file_problems),
                                                "defaults", path, file_problems)
    try:
        _Defaults.model_validate(defaults)
    except ValidationError as exc:
        file_problems += _problems(exc, _Defaults, "defaults", defaults_renamed)

    alerts = Alerts()
    if doc.get("alerts") is not None:
        try:
            alerts = AlertsSection.model_validate(doc["alerts"]).to_alerts()
        except ValidationError as exc:
            file_problems += _problems(exc, AlertsSection, "alerts")
    if file_problems:
        raise ConfigError(f"{path}: " + "; ".join(file_problems))

    problems: list[str] = []
    pipelines: list[tuple[int, Pipeline]] = []
    for index, raw in enumerate(doc["pipelines"]):
        name = raw.get("name") if isinstance(raw, dict) else None
        where = f"pipeline {name!r}" if isinstance(name, str) and name else f"pipeline #{index + 1}"
        if not isinstance(raw, dict):
            problems.append(f"{where}: expected a mapping, got {type(raw).__name__}")
            continue
        entry_problems: list[str] = []
        entry, renamed = _pipeline_entry(_table_check_entry(raw, where, path, entry_problems), where, path,
                                         entry_problems)
        entry, cdc_renamed = _cdc_entry(entry, where, path, entry_problems)
        renamed = {**renamed, **cdc_renamed}
        try:
            pipeline = Pipeline.model_validate(_over_defaults(defaults, entry))
        except ValidationError as exc:
            entry_problems += _problems(exc, Pipeline, where, renamed)
        else:
            try:
                alerts.routed(pipeline.alerts)
            except ValueError as exc:
                entry_problems.append(f"{where}, field 'alerts': {exc}")
        problems += entry_problems
        if not entry_problems:
            pipelines.append((index, pipeline))

    conflicts, involved = _conflicts(pipelines)
    problems += conflicts
    valid = tuple(p for index, p in pipelines if index not in involved)
    return ConfigRead(SyncConfig(path=path, pipelines=valid, alerts=alerts), tuple(problems))


def load_config(path: str | Path) -> SyncConfig:
    """Reads and validates the pipeline file; any problem, of the file or of one entry, is an error.

    Args:
        path: The YAML file (the caller decides where it is).

    Returns:
        The validated configuration.

    Raises:
        ConfigError: Unreadable file, bad YAML, or invalid content; the message names the file, the
            pipeline (by name, or ``#N``) and the field of every problem found, joined by ``; ``.
            Two entries with one name, or two pipelines writing one target table (same
            ``warehouse_conn_id`` and ``target``), are named both.

    Warns:
        DeprecationWarning: A pipeline (or ``defaults:``) uses the old ``checks:`` key instead of
            ``expectations:``, ``reconcile_full_table`` instead of ``per_run_table_check``, or a flat
            CDC key (``slot_chunk_changes``, ``slot_max_lag_seconds``, ``slot_max_retained_wal_bytes``)
            instead of the nested ``cdc:`` block.
    """
    read = read_config(path)
    if read.error is not None:
        raise read.error
    return read.config
