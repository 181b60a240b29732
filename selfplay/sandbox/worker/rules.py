"""What a program may use: its ``Limits``, the modules and names allowed, and the static check.

The static check (layer 1) runs twice: in the caller before any process is involved, and in
the child through the audit hook on every string the standard library compiles there.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass

# Pure modules only. Left out: `time` (results would depend on the clock, and without it no
# program can sleep) and `dataclasses` (it reads `__code__`, which the audit hook refuses).
ALLOWED_MODULES: tuple[str, ...] = (
    "bisect", "cmath", "collections", "copy", "decimal", "fractions", "functools", "heapq",
    "itertools", "math", "numbers", "operator", "random", "re", "statistics", "string", "typing",
)  # fmt: skip
ALWAYS_ALLOWED = frozenset({"__future__"})  # a compiler directive, harmless as an import
INERT_DUNDERS = frozenset({"__init__", "__name__", "__qualname__", "__doc__"})
# Public routes, among the allowed modules, to sys or builtins, or to getattr by string.
DENIED_NAMES = frozenset(
    {"sys", "os", "builtins", "bltns", "attrgetter", "methodcaller", "Formatter", "get_field",
     "get_type_hints"}
)  # fmt: skip
MIN_MEMORY_MB = 32  # the interpreter itself maps about 20 MB


@dataclass(frozen=True)
class Limits:
    """What one program may use."""

    cpu_seconds: float = 1.0  # CPU time
    wall_seconds: float = 2.0  # killed after this, whatever it is doing
    memory_mb: int = 256  # address space of the program's process, interpreter included
    output_bytes: int = 65536  # stdout+stderr kept, and the repr of the value; beyond, stopped
    modules: tuple[str, ...] = ALLOWED_MODULES  # top-level modules ``import`` may load

    def __post_init__(self) -> None:
        for name in ("cpu_seconds", "wall_seconds", "memory_mb", "output_bytes"):
            value, whole = getattr(self, name), name in ("memory_mb", "output_bytes")
            kind = int if whole else int | float
            if isinstance(value, bool) or not isinstance(value, kind) or not 0 < value < math.inf:
                what = "an integer" if whole else "a number"
                raise ValueError(f"Limits.{name} must be {what} > 0 and finite, got {value!r}")
        object.__setattr__(self, "cpu_seconds", float(self.cpu_seconds))
        object.__setattr__(self, "wall_seconds", float(self.wall_seconds))
        object.__setattr__(self, "modules", tuple(self.modules))
        if self.memory_mb < MIN_MEMORY_MB:
            raise ValueError(f"Limits.memory_mb must be at least {MIN_MEMORY_MB}")
        bad = [m for m in self.modules if not (isinstance(m, str) and m.isidentifier())]
        if bad:
            raise ValueError(f"Limits.modules must be top-level module names, got {bad!r}")


def describe(exc: BaseException) -> str:
    """``"ExcType: message"`` on one line."""
    try:
        message = str(exc)
    except Exception:
        message = "<unprintable>"
    line = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return " ".join(line.splitlines())[:500]


def static_violation(source: str, mode: str, modules: tuple[str, ...]) -> str | None:
    """The first rule ``source`` breaks, as ``"ExcType: message"``; None if it keeps them all.
    Raises SyntaxError (or ValueError for null bytes) if it does not parse."""
    allowed = ALWAYS_ALLOWED.union(modules)
    tree = ast.parse(source, "<program>" if mode == "exec" else "<expression>", mode)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            for name in names:
                if getattr(node, "level", 0) or name.partition(".")[0] not in allowed:
                    return f"ImportError: import of {(name or '.')!r} is not allowed"
        attributes: list[str] = []
        if isinstance(node, ast.Attribute):
            attributes = [node.attr]
        elif isinstance(node, ast.ImportFrom):
            attributes = [a.name for a in node.names]
        elif isinstance(node, ast.MatchClass):  # `case C(attr=x)` reads attributes by name
            attributes = node.kwd_attrs
        for attr in attributes:
            if (attr.startswith("_") and attr not in INERT_DUNDERS) or (
                attr in DENIED_NAMES and attr not in allowed
            ):
                return f"AttributeError: attribute {attr!r} is not allowed"
        if isinstance(node, ast.Name) and (
            (node.id.startswith("__") and node.id != "__name__")
            or (node.id in DENIED_NAMES and node.id not in allowed)
        ):
            return f"NameError: name {node.id!r} is not allowed"
    return None
