"""YAML → stage dataclass, with unknown keys rejected and ``--set a.b=c`` overrides.

Every stage has one config dataclass composed of small shared pieces (never inheritance). Each field is
documented once, by an attribute docstring directly under it; ``polyglot-llama <stage> --help`` shows that
text. Validation lives in each dataclass's ``__post_init__`` and raises `UserError` naming the key.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import types
import typing
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError
from . import fingerprint
from .checks import check_model_overrides
from .io import write_text
from .validation import check_fields


@lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings of a dataclass: ``{field_name: doc}`` (the string literal right below a field)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0].body
        for node, following in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def _resolved_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    """Check/convert one YAML value to the field's declared type; errors name the key."""
    tp, optional = _unwrap_optional(tp)
    if value is None:
        if optional or tp is Any:
            return None
        raise UserError(f"{where}: key '{key}' may not be null; give a value or delete the key to use the default")
    if tp in (dict, list):  # bare annotations: parametrise so the branches below apply
        tp = dict[str, Any] if tp is dict else list[Any]
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise UserError(f"{where}: key '{key}' must be a mapping of {tp.__name__} fields")
        return from_dict(tp, value, where, prefix=f"{key}.")
    if origin in (list, tuple):
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            value = [value]
        return [_coerce(v, item_tp, f"{key}[{i}]", where) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"{where}: key '{key}' must be a mapping")
        _, val_tp = typing.get_args(tp) or (Any, Any)
        return {str(k): _coerce(v, val_tp, f"{key}.{k}", where) for k, v in value.items()}
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise UserError(f"{where}: key '{key}' is {value!r}; allowed: {', '.join(map(repr, allowed))}")
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg, key, where)
            except UserError:
                continue
        raise UserError(f"{where}: key '{key}' has value {value!r} of the wrong type")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise UserError(f"{where}: key '{key}' must be true or false, not {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, str, float)):
            raise UserError(f"{where}: key '{key}' must be an integer, not {value!r}")
        try:
            as_float = float(value)
        except ValueError:
            raise UserError(f"{where}: key '{key}' must be an integer, not {value!r}") from None
        if as_float != int(as_float):
            raise UserError(f"{where}: key '{key}' must be an integer, not {value!r}")
        return int(as_float)
    if tp is float:
        # PyYAML reads `3e-4` (no dot) as a string: accept numeric strings for float fields.
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UserError(f"{where}: key '{key}' must be a number, not {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise UserError(f"{where}: key '{key}' must be a string, not {type(value).__name__}")
        return str(value)
    return value


def _merge_onto_default(f: dataclasses.Field, tp: Any, value: Any) -> Any:
    """A partial mapping for a nested section keeps the section's own defaults for the keys it omits.

    SFT's default optimiser has lr 2e-5: ``optim: {weight_decay: 0}`` must keep that lr, not fall back to
    the OptimConfig class default.
    """
    tp, _ = _unwrap_optional(tp)
    if not (dataclasses.is_dataclass(tp) and isinstance(value, dict)):
        return value
    if f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
        return value
    try:
        base = to_dict(f.default_factory())  # type: ignore[misc]
    except UserError:  # defaults that are incomplete on their own: nothing to merge onto
        return value
    return _deep_merge(base, value)


def _deep_merge(base: dict, update: dict) -> dict:
    merged = dict(base)
    for key, value in update.items():
        merged[key] = _deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def from_dict(cls: type, data: dict, where: str = "config", prefix: str = ""):
    """Build ``cls`` from a dict; unknown keys are a `UserError` that names them and lists the known ones."""
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a mapping of {cls.__name__} fields, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise UserError(
            f"{where}: unknown key '{prefix}{unknown[0]}'; known keys here: {', '.join(sorted(fields))}"
        )
    hints = _resolved_hints(cls)
    data = {k: _merge_onto_default(fields[k], hints[k], v) for k, v in data.items()}
    kwargs = {k: _coerce(v, hints[k], f"{prefix}{k}", where) for k, v in data.items()}
    try:
        kwargs = check_fields(kwargs, prefix)
        if "overrides" in fields and "preset" in fields:  # a model shape: preset + LlamaConfig overrides
            check_model_overrides(kwargs.get("preset", fields["preset"].default), kwargs.get("overrides", {}))
        return cls(**kwargs)
    except UserError as e:
        message = str(e)
        raise UserError(message if message.startswith(where) else f"{where}: {message}") from None


def to_dict(cfg: Any) -> Any:
    """A plain, YAML-ready dict of a config dataclass (recursively)."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg) if f.init}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, Path):
        return str(cfg)
    return cfg


def set_dotted(data: dict, dotted_key: str, value: Any) -> None:
    """``set_dotted(d, "optim.lr", 1e-4)`` sets ``d["optim"]["lr"]``, creating sections as needed."""
    *parents, last = dotted_key.split(".")
    node = data
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[last] = value


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``a.b=value`` (value read as YAML, so lists and numbers work) from ``--set``."""
    if "=" not in text:
        raise UserError(f"--set {text!r}: expected KEY=VALUE, e.g. --set optim.lr=1e-4")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start}); a config must be a YAML text file") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read the config ({e.strerror or e})") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}:{line} is not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a config must be a YAML mapping of keys to values")
    data.pop("stage", None)  # written by write_resolved_config for readers; not a field
    return data


def load_config(cls: type, path: str | Path | None = None, overrides: dict[str, Any] | None = None):
    """Read YAML (optional), apply dotted overrides, validate into ``cls``."""
    data = read_yaml(path) if path else {}
    for key, value in (overrides or {}).items():
        set_dotted(data, key, value)
    return from_dict(cls, data, where=str(path) if path else "command line")


def resolved_config_path(directory: str | Path, stage: str) -> Path:
    """Where `write_resolved_config` puts a stage's resolved config: ``DIR/<stage>.config.yaml``."""
    return Path(directory) / f"{stage.replace(' ', '_')}.config.yaml"


def write_resolved_config(cfg: Any, directory: str | Path, stage: str) -> Path:
    """Write the fully resolved config as ``DIR/<stage>.config.yaml`` so the run can be repeated exactly.

    First claims ``directory`` for this run (`fingerprint.claim`): a folder holding a different run's
    output is a `UserError`, so no stage resumes or reuses another run's state.
    """
    fingerprint.claim(to_dict(cfg), directory, stage)
    path = resolved_config_path(directory, stage)
    header = f"# Resolved config of `polyglot-llama {stage}`; rerun with: polyglot-llama {stage} --config {path.name}\n"
    body = yaml.safe_dump({"stage": stage, **to_dict(cfg)}, sort_keys=False, allow_unicode=True)
    write_text(path, header + body)
    return path
