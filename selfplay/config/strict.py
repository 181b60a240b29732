"""Strict YAML loading into typed dataclasses.

Every config is a tree of dataclasses with one field per knob. Loading is strict: an
unknown key, a missing required key, a value of the wrong type, a NaN or infinite number, a
key given twice, a YAML error (with its line and column) or a file that is not text raises
``ConfigError`` naming the file and the dotted key, which the CLI prints as one line (exit
status 2). Values are checked by each dataclass's ``__post_init__`` (a ``ValueError`` naming
the dotted key, turned into a ``ConfigError`` naming the file).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import types
import typing
from collections.abc import Hashable
from pathlib import Path
from typing import Any, TypeVar

from selfplay.errors import ConfigError

T = TypeVar("T")


def load_config(path: str | Path, cls: type[T]) -> T:
    """Read ``path`` (YAML) into an instance of the dataclass ``cls``."""
    path = Path(path)
    return from_dict(cls, read_yaml(path), source=str(path))


def read_yaml(path: Path) -> Any:
    """The plain data of the YAML file ``path`` (``{}`` when empty); a ConfigError, naming the
    file and the line and column where there is one, for a missing, unreadable or binary file,
    a YAML error or a key given twice in one mapping (YAML would keep the second silently)."""
    import yaml

    if path.is_dir():
        raise ConfigError(f"{path}: a folder, not a config file")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config file: {err.strerror}") from None
    # YAML is UTF-8, or UTF-16 after a byte order mark (what some editors save as "Unicode").
    encoding = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path}: not a text file (byte 0x{data[err.start]:02x} at offset {err.start} "
            f"is not {'UTF-16' if encoding == 'utf-16' else 'UTF-8'})"
        ) from None
    try:
        return yaml.load(text, Loader=_strict_loader()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: {_yaml_error(err, text)}") from None


def _yaml_error(err: Exception, text: str) -> str:
    """A YAML error as one line: where (line, column; 1-based), then what."""
    import yaml

    if isinstance(err, yaml.reader.ReaderError):  # a character YAML does not allow
        line = text.count("\n", 0, err.position) + 1
        column = err.position - (text.rfind("\n", 0, err.position) + 1) + 1
        what = f"character #x{err.character:04x} is not allowed"
        return f"line {line}, column {column}: not valid YAML: {what}"
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    what = getattr(err, "problem", None) or str(err).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}not valid YAML: {what}"


@functools.cache
def _strict_loader() -> type:
    """The YAML loader of config files (made on first use: yaml stays out of ``--help``)."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        """YAML's safe loader, refusing a key given twice in one mapping."""

        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                first: dict[Any, int] = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":  # `<<:` merges may be overridden
                        continue
                    key = self.construct_object(key_node, deep=True)
                    if not isinstance(key, Hashable):  # the base class refuses it
                        continue
                    if key in first:
                        raise yaml.constructor.ConstructorError(
                            problem=f"duplicate key {key!r} (first at line {first[key] + 1})",
                            problem_mark=key_node.start_mark,
                        )
                    first[key] = key_node.start_mark.line
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


def from_dict(cls: type[T], raw: Any, source: str = "<config>", key: str = "") -> T:
    """Build dataclass ``cls`` from plain data, checking every key and type."""
    where = f"{source}: key '{key}'" if key else source
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        prefix = f"{key}." if key else ""
        raise ConfigError(
            f"{source}: unknown key '{prefix}{unknown[0]}' (known: {', '.join(sorted(fields))})"
        )
    hints = typing.get_type_hints(cls)
    values = {}
    for name, field in fields.items():
        dotted = f"{key}.{name}" if key else name
        if name in raw:
            values[name] = convert(hints[name], raw[name], source, dotted)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{source}: missing required key '{dotted}'")
    try:
        return cls(**values)
    except ValueError as err:
        raise ConfigError(f"{source}: {err}") from None


def convert(hint: Any, value: Any, source: str, key: str) -> Any:
    """``value`` checked (and ints widened to float) against the type ``hint``; ConfigError names ``key``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return convert(options[0], value, source, key)
        for option in options:
            try:
                return convert(option, value, source, key)
            except ConfigError:
                continue
        raise _wrong(hint, value, source, key)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, source, key)
    if origin is list:
        if not isinstance(value, list):
            raise _wrong(hint, value, source, key)
        return [convert(args[0], v, source, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _wrong(hint, value, source, key)
        return {
            convert(args[0], k, source, key): convert(args[1], v, source, f"{key}.{k}")
            for k, v in value.items()
        }
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, float) and not math.isfinite(value):
        # YAML's .nan and .inf: no knob means "not a number", and every comparison with NaN is
        # False, so a range check would let it through to fail (or silently act) mid-run.
        raise ConfigError(f"{source}: key '{key}': expected a finite number, got {value}")
    if hint in (int, float) and isinstance(value, bool):
        raise _wrong(hint, value, source, key)
    if isinstance(hint, type) and isinstance(value, hint):
        return value
    raise _wrong(hint, value, source, key)


def _wrong(hint: Any, value: Any, source: str, key: str) -> ConfigError:
    return ConfigError(
        f"{source}: key '{key}': expected {_name(hint)}, got {type(value).__name__} {value!r}"
    )


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def merge(base: Any, over: Any) -> Any:
    """``over`` laid over ``base``: mappings merged key by key (recursively), anything else
    replaced by ``over``'s value. Neither argument is changed."""
    import copy

    if not (isinstance(base, dict) and isinstance(over, dict)):
        return copy.deepcopy(over)
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
    return out


def to_dict(config: Any) -> dict[str, Any]:
    """Plain-data form of a config dataclass (for saving beside a run or model)."""
    return dataclasses.asdict(config)


ADDED_LATER = "added_later"
"""Field metadata key: ``field(default=..., metadata={ADDED_LATER: True})`` marks a field added
after artefacts were cached under hashes without it. At its default it is left out of
``config_hash``, so those artefacts (a trained organism, say) keep their names."""


def config_hash(config: Any, length: int = 12) -> str:
    """A stable short hash of a config's content, used to name cached artefacts."""
    text = json.dumps(_hashed(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _hashed(value: Any) -> Any:
    """Plain data of ``value`` as ``config_hash`` sees it: ADDED_LATER fields at their default left out."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if f.metadata.get(ADDED_LATER) and item == _default(f):
                continue
            out[f.name] = _hashed(item)
        return out
    if isinstance(value, dict):
        return {k: _hashed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_hashed(v) for v in value]
    return value


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default
