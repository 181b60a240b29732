"""A program inside its child process: what it can reach and what watches it (layers 2 and 3).

Layer 2: restricted builtins, and ``import`` handing out *views* of the allowed modules (their
public attributes, module-typed ones only as views of allowed modules, no routes to attributes
by string), never the modules themselves. Layer 3: the audit hook, refusing by default every
event not known to be harmless, any path outside the program's directory and any code string
that breaks the static check; os functions that raise no event are replaced by ones it refuses.
``execute`` runs the program under both and reports how it ended.
"""

from __future__ import annotations

import builtins
import functools
import os
import sys
import types

from .protocol import write_all
from .rules import ALWAYS_ALLOWED, DENIED_NAMES, Limits, describe, static_violation

_REMOVED_BUILTINS = frozenset(
    {"open", "eval", "exec", "compile", "input", "globals", "locals", "vars", "getattr",
     "setattr", "delattr", "breakpoint", "help", "exit", "quit", "memoryview"}
)  # fmt: skip
# Library functions that name attributes by string in their optional arguments: in the
# programs' view only their plain form is offered (the number of positional arguments).
_FIXED_ATTRIBUTES = {"functools": {"update_wrapper": 2, "wraps": 1}}
# Audit events and the positions of their path arguments; a path outside the program's
# directory is refused. Paths resolve against the cwd, which is that directory and, with
# chdir and symlinks refused, also the shallowest directory a dir_fd can point at.
_PATH_EVENTS = {
    "open": (0,), "os.listdir": (0,), "os.scandir": (0,), "os.mkdir": (0,), "os.rmdir": (0,),
    "os.remove": (0,), "os.chmod": (0,), "os.chown": (0,), "os.truncate": (0,),
    "os.utime": (0,), "os.rename": (0, 1), "os.link": (0, 1), "shutil.rmtree": (0,),
    "os.setxattr": (0,), "os.removexattr": (0,), "os.getxattr": (0,), "os.listxattr": (0,),
}  # fmt: skip
# os functions that raise no audit event but that a program could misuse (device nodes, a new
# root, namespaces, other processes, identities): in the child they are replaced by ones
# raising "os.<name>", which the hook refuses. The syscall filter refuses them as well.
UNAUDITED = (
    "mknod", "mkfifo", "chroot", "unshare", "setns", "pidfd_open", "setuid", "setgid",
    "seteuid", "setegid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups",
    "initgroups", "setpgid", "setsid", "setpgrp", "sched_setaffinity", "setpriority", "nice",
    "login_tty", "openpty", "register_at_fork", "memfd_create", "eventfd", "splice",
)  # fmt: skip
# Audit events a program may raise; every other event is refused (and so is anything new a
# later Python adds). Paths are checked apart (_PATH_EVENTS), and "compile" by the static check.
_ALLOWED_EVENTS = frozenset(
    {"exec", "builtins.id", "object.__setattr__", "object.__delattr__", "time.sleep",
     "sys.excepthook", "sys.unraisablehook"}
)  # fmt: skip
_RESERVE = 1 << 20  # freed on MemoryError, so that the report can still be built


class _OutputLimit(BaseException):
    """Raised by print() beyond the output limit; a BaseException so `except Exception`
    in the program does not swallow it."""


class _Output:
    """The program's sys.stdout and sys.stderr: writes through to fd 1, up to the limit."""

    def __init__(self, limit: int, flags: set[str]):
        self.left, self.flags = limit, flags

    def write(self, text: str) -> int:
        data = str(text).encode("utf-8", "backslashreplace")
        if len(data) > self.left:  # cut at a character boundary
            data = data[: max(self.left, 0)].decode("utf-8", "ignore").encode("utf-8")
            self.flags.add("output")
        write_all(1, data)
        self.left -= len(data)
        if "output" in self.flags:
            raise _OutputLimit("output limit exceeded")
        return len(text)

    def flush(self) -> None:
        pass


def module_views(modules: tuple[str, ...]) -> dict[str, types.ModuleType]:
    """What ``import`` hands a program: for each loaded module under an allowed name, a fresh
    module holding the real one's public attributes. A module-typed attribute becomes the
    view of that module when it is allowed too and is left out otherwise (``typing.types``,
    ``statistics.sys``), and so are the public routes to attributes by string
    (``operator.attrgetter``, ``typing.get_type_hints``). The real modules stay out of reach,
    and a program that changes a view changes nothing the process itself uses."""
    allowed = ALWAYS_ALLOWED.union(modules)
    names = [
        name
        for name in list(sys.modules)
        if name.partition(".")[0] in allowed
        and not any(part.startswith("_") for part in name.split("."))
        and isinstance(sys.modules[name], types.ModuleType)  # not typing.io's stand-ins
    ]
    views = {name: types.ModuleType(name, vars(sys.modules[name]).get("__doc__")) for name in names}
    by_identity = {id(sys.modules[name]): view for name, view in views.items()}  # os.path too
    for name, view in views.items():
        real = vars(view)
        for attr, value in list(vars(sys.modules[name]).items()):
            if attr.startswith("_") or (attr in DENIED_NAMES and attr not in allowed):
                continue
            if attr in UNAUDITED and sys.modules[name] in (os, sys.modules[os.name]):
                value = audited(f"os.{attr}")
            elif isinstance(value, types.ModuleType):
                value = by_identity.get(id(value))
                if value is None:
                    continue
            real[attr] = value
        for attr, positional in _FIXED_ATTRIBUTES.get(name, {}).items():
            real[attr] = _fixed_attributes(real[attr], positional)
        public = vars(sys.modules[name]).get("__all__")
        if isinstance(public, list | tuple):
            real["__all__"] = [attr for attr in public if attr in real]
    return views


def _fixed_attributes(function, positional: int):
    """``function`` (``functools.wraps``, ``update_wrapper``) with the attributes it copies
    left at their defaults: given names, it reads and writes any attribute by string
    (``updated=("__globals__",)`` pours a module's globals into the program's)."""

    def fixed(*args):
        if len(args) != positional:
            raise TypeError(f"{function.__name__}() takes {positional} arguments in the sandbox")
        return function(*args)

    fixed.__name__ = fixed.__qualname__ = function.__name__
    fixed.__doc__ = function.__doc__
    return fixed


@functools.lru_cache(maxsize=8)
def worker_views(modules: tuple[str, ...]) -> dict[str, types.ModuleType]:
    """``module_views`` of ``modules``, imported first, made once in a worker: each forked
    child gets its own copy of them (a program that changes one changes only its own)."""
    for name in modules:
        try:
            __import__(name)
        except ImportError:
            pass  # the program's import then fails as an ordinary ModuleNotFoundError
    return module_views(modules)


def _import_guard(modules: tuple[str, ...], flags: set[str], views: dict[str, types.ModuleType]):
    """The programs' __import__: views of allowed modules that are already loaded, nothing else."""
    allowed = ALWAYS_ALLOWED.union(modules)

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level or type(name) is not str or name.partition(".")[0] not in allowed:
            flags.add("violation")
            raise ImportError(f"import of {name!r} is not allowed")
        if name not in views:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return views[name] if fromlist else views[name.partition(".")[0]]

    return guarded_import


def _audit_hook(work: str, flags: set[str], modules: tuple[str, ...]):
    """The child's audit hook: refuses every event it does not know to be harmless.

    It holds its own references: the path check is lexical and calls nothing a program could
    replace (no ``os.path``, no module globals), so a program that reaches the real modules
    still cannot switch it off. Paths are resolved against the program's directory, which is
    the cwd for good (chdir is refused) and holds no symlinks (creating one is refused), so a
    lexical ``..`` is the real one. Code compiled from a string anywhere in the process, the
    standard library's own ``eval`` of an annotation included, meets the static check first.
    """
    allowed_events, path_events = _ALLOWED_EVENTS, dict(_PATH_EVENTS)
    check, busy, prefix = static_violation, [], work + "/"
    str_, bytes_, type_ = str, bytes, type

    def inside(path) -> bool:
        if type_(path) is bytes_:
            path = path.decode("utf-8", "surrogateescape")
        elif path is None:
            path = "."
        elif type_(path) is not str_:  # an fd, or an object whose __fspath__ could lie
            return False
        parts: list[str] = []
        for part in (path if path.startswith("/") else prefix + path).split("/"):
            if part == "..":
                if parts:
                    parts.pop()
            elif part and part != ".":
                parts.append(part)
        real = "/" + "/".join(parts)
        return real == work or real.startswith(prefix)

    def hook(event: str, args: tuple) -> None:
        if event in allowed_events:
            return
        if event in path_events:
            outside = [args[i] for i in path_events[event] if not inside(args[i])]
            if not outside:
                return
            refusal: Exception = PermissionError(
                f"{event} of {outside[0]!r} outside the sandbox's directory is not allowed"
            )
        elif event == "compile":
            if busy:  # the check's own parse
                return
            source = args[0]
            if type_(source) is bytes_:
                source = source.decode("utf-8", "replace")
            if type_(source) is not str_:
                return  # an AST: made from source that was itself compiled, and checked
            busy.append(1)
            try:
                problem = check(source, "exec", modules)
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                problem = None  # the compile itself fails the same way
            finally:
                busy.pop()
            if problem is None:
                return
            refusal = PermissionError(f"compiled code breaks a rule: {problem}")
        elif event == "import":  # of a module not loaded before the hook
            refusal = ImportError(f"import of {args[0]!r} is not allowed")
            if type_(args[0]) is str_ and args[0].startswith("encodings."):
                raise refusal  # a codec not preloaded: an unknown encoding, not a violation
        elif event in ("sys._getframe", "sys._getframemodulename"):
            raise ValueError("the call stack is not available in the sandbox")  # stdlib expects it
        else:
            refusal = PermissionError(f"{event} is not allowed in the sandbox")
        flags.add("violation")
        raise refusal

    return hook


def execute(
    code: str, expression: str | None, limits: Limits, work: str, views: dict[str, types.ModuleType]
) -> dict:
    """Run the program in this confined process: its report, less stdout and timing."""
    flags: set[str] = set()
    reserve = bytes(_RESERVE)  # calloc'ed: costs no page faults until freed
    names = {k: v for k, v in vars(builtins).items() if k not in _REMOVED_BUILTINS}
    names["__import__"] = _import_guard(limits.modules, flags, views)
    # The program is the main module: the standard library resolves its classes' string
    # annotations in sys.modules["__main__"], which must be the program's, not this worker's.
    main = types.ModuleType("__main__")
    namespace = vars(main)
    namespace["__builtins__"] = names
    sys.modules["__main__"] = main
    program = compile(code, "<program>", "exec")
    question = None if expression is None else compile(expression, "<expression>", "eval")
    sys.stdout = sys.stderr = _Output(limits.output_bytes, flags)
    sys.addaudithook(_audit_hook(work, flags, limits.modules))
    value = None
    try:
        exec(program, namespace)
        if question is not None:
            value = repr(eval(question, namespace))
            if len(value.encode("utf-8", "backslashreplace")) > limits.output_bytes:
                flags.add("output")
        status, error = "ok", ""
    except MemoryError:
        del reserve
        status, error = "killed", f"memory limit {limits.memory_mb} MB exceeded"
    except BaseException as exc:
        status, error = "error", describe(exc)
        if isinstance(exc, NameError) and exc.name in _REMOVED_BUILTINS:
            flags.add("violation")
            error = f"NameError: name {exc.name!r} is not available in the sandbox"
    if "output" in flags:
        status, error = "killed", f"output limit {limits.output_bytes} bytes exceeded"
    return {
        "status": status,
        "value": value if status == "ok" else None,
        "error": error,
        "violation": "violation" in flags,
    }


def audited(event: str):
    """A stand-in for a function no audit event guards: it raises ``event``, and nothing else."""

    def audited(*args, **kwargs) -> None:
        sys.audit(event)

    return audited
