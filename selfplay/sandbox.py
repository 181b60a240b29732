"""Sandbox: runs short untrusted Python programs (a Challenger's) and returns structured results.

A ``Sandbox`` is a pool of worker processes, each a slim interpreter (``python -I -S`` running
this file with ``--worker``, standard library only) that has imported the allowed modules once.
The caller never forks itself (a trainer has torch, threads and gigabytes mapped); a worker
forks a child per program, which is what makes it fast (a fork is about a millisecond, a fresh
interpreter tens). Requests and replies are length-prefixed JSON on the worker's stdin/stdout.

Defence in depth, innermost first:

1. **Static check**, in the caller, before any process is involved: the program and the
   expression are parsed; imports of modules outside ``Limits.modules``, names starting with
   ``__`` (bar ``__name__``), attributes starting with ``_`` (bar a few inert dunders such as
   ``__init__``) and a few handles on ``sys``/``builtins`` or string-keyed attribute lookups
   (``fractions.sys``, ``operator.attrgetter``, ...) are refused as violations. The same check
   meets every string the standard library compiles in the child (a string annotation that
   ``typing`` evaluates, a ``namedtuple`` template), through the audit hook.
2. **Restricted builtins and module views**: no ``open``, ``eval``, ``exec``, ``compile``,
   ``getattr`` and the like; ``import`` hands out a *view* of an allowed module (its public
   attributes; module-typed ones only where that module is allowed too, as its view; no
   routes to attributes by string), never the module itself. The program is the child's
   ``__main__``, so names the library resolves there are the program's own.
3. **Audit hook** (``sys.addaudithook``) in the child, refusing by default: an event not known
   to be harmless is refused, so is any path outside the program's private directory, and
   any code string that breaks the static check. It holds its own references (a lexical
   path check that calls nothing a program could replace), so a program that reaches the
   real modules cannot switch it off. os functions that raise no event (``pidfd_open``,
   ``setuid``, ``mknod``, ...) are replaced in the child by ones the hook refuses. A refusal
   is recorded, so ``Result.violation`` holds even when the program catches the exception.
4. **The kernel**, where it offers it (``Sandbox.kernel_layers``): Landlock confines the
   process's files to its own directory (and, on newer kernels, refuses TCP and signals to
   any other process); a seccomp filter (x86-64) allows only the ~80 system calls a Python
   program computing a value needs (no sockets, fork, exec, kill, pidfds, ptrace,
   namespaces, setuid, rlimits), any other fails with EPERM. Both hold without the hook.
5. **The child process**: its own session (the worker kills the whole process group), a new
   network namespace where the kernel allows it, rlimits on CPU time, address space, file
   size, processes, core files and open files, an empty environment (the workers are
   started with one), a private temporary working directory that is always removed, fds 0-2
   pointing at /dev/null and an output file (C-level writes cannot reach the worker's
   pipes), bounded ``print`` output, and a wall-clock deadline after which the worker kills
   it. A worker that dies is restarted by the pool.

What it guards against: programs a small model writes (mistakes, infinite loops, memory and
output floods) and programs that try to reach outside: other files, processes, the network,
the machine's identity. Layers 1 and 2 can still be reached past through library paths
nobody has found yet; then layers 3 to 5 keep the outside safe, and the kernel's layers hold
even against a program that subverts the interpreter itself. What it does not guard against:
a program forging its own report (the value, ``violation``) once past layers 1 and 2, and
bugs in the kernel. For code from a determined adversary on a machine without Landlock and
seccomp, run the pool inside a container or VM.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import errno
import functools
import gc
import json
import math
import os
import queue
import resource
import select
import shutil
import signal
import sys
import tempfile
import threading
import time
import types
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NoReturn

# Pure modules only. Left out: `time` (results would depend on the clock, and without it no
# program can sleep) and `dataclasses` (it reads `__code__`, which the audit hook refuses).
ALLOWED_MODULES: tuple[str, ...] = (
    "bisect", "cmath", "collections", "copy", "decimal", "fractions", "functools", "heapq",
    "itertools", "math", "numbers", "operator", "random", "re", "statistics", "string", "typing",
)  # fmt: skip
_ALWAYS_ALLOWED = frozenset({"__future__"})  # a compiler directive, harmless as an import
# Codecs loaded in the worker: programs cannot import one later (utf-8 is always there).
_CODECS = ("ascii", "latin-1", "utf-16", "utf-32", "cp1252", "unicode-escape", "idna")

_REMOVED_BUILTINS = frozenset(
    {"open", "eval", "exec", "compile", "input", "globals", "locals", "vars", "getattr",
     "setattr", "delattr", "breakpoint", "help", "exit", "quit", "memoryview"}
)  # fmt: skip
# Library functions that name attributes by string in their optional arguments: in the
# programs' view only their plain form is offered (the number of positional arguments).
_FIXED_ATTRIBUTES = {"functools": {"update_wrapper": 2, "wraps": 1}}
_INERT_DUNDERS = frozenset({"__init__", "__name__", "__qualname__", "__doc__"})
# Public routes, among the allowed modules, to sys or builtins, or to getattr by string.
_DENIED_NAMES = frozenset(
    {"sys", "os", "builtins", "bltns", "attrgetter", "methodcaller", "Formatter", "get_field",
     "get_type_hints"}
)  # fmt: skip

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
_UNAUDITED = (
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
# The kernel's syscall filter (seccomp), the outer layer: on x86-64 Linux a program's process
# may make only these system calls, whatever it reached inside the interpreter; any other
# fails with EPERM. Signals only to itself (abort), no sockets, processes, namespaces,
# identities, rlimits, ptrace or pidfds. Paths are left to the audit hook.
_SYSCALLS_X86_64 = {
    "read": 0, "write": 1, "open": 2, "close": 3, "stat": 4, "fstat": 5, "lstat": 6,
    "lseek": 8, "mmap": 9, "mprotect": 10, "munmap": 11, "brk": 12, "rt_sigaction": 13,
    "rt_sigprocmask": 14, "rt_sigreturn": 15, "ioctl": 16, "pread64": 17, "pwrite64": 18,
    "readv": 19, "writev": 20, "access": 21, "sched_yield": 24, "mremap": 25, "madvise": 28,
    "dup": 32, "dup2": 33, "nanosleep": 35, "getitimer": 36, "setitimer": 38, "getpid": 39,
    "exit": 60, "uname": 63, "fcntl": 72, "fsync": 74, "fdatasync": 75, "ftruncate": 77,
    "getdents": 78, "getcwd": 79, "rename": 82, "mkdir": 83, "rmdir": 84, "unlink": 87,
    "readlink": 89, "umask": 95, "gettimeofday": 96, "getrusage": 98, "sysinfo": 99,
    "times": 100, "getuid": 102, "getgid": 104, "geteuid": 107, "getegid": 108,
    "getppid": 110, "getpgrp": 111, "sigaltstack": 131, "gettid": 186, "futex": 202,
    "sched_getaffinity": 204, "getdents64": 217, "restart_syscall": 219, "fadvise64": 221,
    "clock_gettime": 228, "clock_getres": 229, "clock_nanosleep": 230, "exit_group": 231,
    "openat": 257, "mkdirat": 258, "newfstatat": 262, "unlinkat": 263, "renameat": 264,
    "readlinkat": 267, "faccessat": 269, "utimensat": 280, "dup3": 292, "renameat2": 316,
    "getrandom": 318, "statx": 332, "rseq": 334, "faccessat2": 439,
}  # fmt: skip
_TGKILL_X86_64 = 234  # allowed with the process's own pid as its first argument only
_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_SYSCALL_BIT = 0x40000000
# Landlock, the kernel's file confinement (Linux 5.13 and later, where enabled): the program's
# process may read, write, list, make and remove files beneath its own directory and nothing
# else, and (where the kernel's Landlock is new enough) may neither use TCP nor signal any
# process outside itself. The syscall numbers are the same on every architecture.
_LANDLOCK_CREATE_RULESET, _LANDLOCK_ADD_RULE, _LANDLOCK_RESTRICT_SELF = 444, 445, 446
_LANDLOCK_RULE_PATH_BENEATH, _LANDLOCK_CREATE_RULESET_VERSION = 1, 1
# Access rights by the Landlock ABI version that introduced them, and those granted inside.
_LANDLOCK_FS = {1: (1 << 13) - 1, 2: 1 << 13, 3: 1 << 14, 5: 1 << 15}  # ..MAKE_SYM, REFER, ...
_LANDLOCK_INSIDE = sum(  # write, read, list, remove dir/file, make dir/file, refer, truncate
    1 << bit for bit in (1, 2, 3, 4, 5, 7, 8, 13, 14)
)
_LANDLOCK_NET = (4, 0b11)  # TCP bind and connect: none
_LANDLOCK_SCOPED = (6, 0b11)  # abstract unix sockets and signals outside the process: none
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2
_SECCOMP_RET_ALLOW, _SECCOMP_RET_ERRNO, _SECCOMP_RET_KILL = 0x7FFF0000, 0x00050000, 0x80000000

_PR_SET_PDEATHSIG = 1
_CLONE_NEWNET = 0x40000000
_MIN_MEMORY_MB = 32  # the interpreter itself maps about 20 MB
_FILE_BYTES = 1 << 20  # RLIMIT_FSIZE, unless the output limit is larger
_OPEN_FILES = 16
_RECURSION = 2000
_RESERVE = 1 << 20  # freed on MemoryError, so that the report can still be built
_REPORT_SLACK = 1 << 16  # the report's bytes beyond the value
_GRACE_SECONDS = 10.0  # a worker's own work beyond the wall limit, before the pool gives up
_READY_SECONDS = 30.0
_STOP_SECONDS = 2.0


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
        if self.memory_mb < _MIN_MEMORY_MB:
            raise ValueError(f"Limits.memory_mb must be at least {_MIN_MEMORY_MB}")
        bad = [m for m in self.modules if not (isinstance(m, str) and m.isidentifier())]
        if bad:
            raise ValueError(f"Limits.modules must be top-level module names, got {bad!r}")


@dataclass(frozen=True)
class Result:
    """How one program ended."""

    status: str  # "ok" | "timeout" | "error" | "killed"
    value: str | None  # repr() of the expression's value when status is "ok", else None
    stdout: str  # stdout and stderr, at most Limits.output_bytes
    error: str  # "" when ok, else one line saying why
    seconds: float  # wall time of the program
    violation: bool = False  # it tried something the sandbox forbids


def _describe(exc: BaseException) -> str:
    """``"ExcType: message"`` on one line."""
    try:
        message = str(exc)
    except Exception:
        message = "<unprintable>"
    line = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return " ".join(line.splitlines())[:500]


def _static_violation(source: str, mode: str, modules: tuple[str, ...]) -> str | None:
    """The first rule ``source`` breaks, as ``"ExcType: message"``; None if it keeps them all.
    Raises SyntaxError (or ValueError for null bytes) if it does not parse."""
    allowed = _ALWAYS_ALLOWED.union(modules)
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
            if (attr.startswith("_") and attr not in _INERT_DUNDERS) or (
                attr in _DENIED_NAMES and attr not in allowed
            ):
                return f"AttributeError: attribute {attr!r} is not allowed"
        if isinstance(node, ast.Name) and (
            (node.id.startswith("__") and node.id != "__name__")
            or (node.id in _DENIED_NAMES and node.id not in allowed)
        ):
            return f"NameError: name {node.id!r} is not allowed"
    return None


# ---- the protocol: length-prefixed JSON over pipes -------------------------------------


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _send(fd: int, payload: bytes) -> None:
    _write_all(fd, len(payload).to_bytes(4, "big") + payload)


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes:
    chunks = []
    poller = select.poll()  # not select.select: a trainer's fds can be above FD_SETSIZE
    poller.register(fd, select.POLLIN)
    while size:
        if deadline is not None and not poller.poll(max(0.0, deadline - time.monotonic()) * 1e3):
            raise TimeoutError("no reply from the worker in time")
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            raise EOFError("the worker's pipe closed")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _receive(fd: int, deadline: float | None = None) -> bytes:
    return _read_exact(fd, int.from_bytes(_read_exact(fd, 4, deadline), "big"), deadline)


# ---- the worker and the child it forks per program -------------------------------------


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
        _write_all(1, data)
        self.left -= len(data)
        if "output" in self.flags:
            raise _OutputLimit("output limit exceeded")
        return len(text)

    def flush(self) -> None:
        pass


def _views(modules: tuple[str, ...]) -> dict[str, types.ModuleType]:
    """What ``import`` hands a program: for each loaded module under an allowed name, a fresh
    module holding the real one's public attributes. A module-typed attribute becomes the
    view of that module when it is allowed too and is left out otherwise (``typing.types``,
    ``statistics.sys``), and so are the public routes to attributes by string
    (``operator.attrgetter``, ``typing.get_type_hints``). The real modules stay out of reach,
    and a program that changes a view changes nothing the process itself uses."""
    allowed = _ALWAYS_ALLOWED.union(modules)
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
            if attr.startswith("_") or (attr in _DENIED_NAMES and attr not in allowed):
                continue
            if attr in _UNAUDITED and sys.modules[name] in (os, sys.modules[os.name]):
                value = _audited(f"os.{attr}")
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
def _worker_views(modules: tuple[str, ...]) -> dict[str, types.ModuleType]:
    """``_views`` of ``modules``, imported first, made once in a worker: each forked child gets
    its own copy of them (a program that changes one changes only its own)."""
    for name in modules:
        try:
            __import__(name)
        except ImportError:
            pass  # the program's import then fails as an ordinary ModuleNotFoundError
    return _views(modules)


def _import_guard(modules: tuple[str, ...], flags: set[str], views: dict[str, types.ModuleType]):
    """The programs' __import__: views of allowed modules that are already loaded, nothing else."""
    allowed = _ALWAYS_ALLOWED.union(modules)

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
    check, busy, prefix = _static_violation, [], work + "/"
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


def _execute(
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
        status, error = "error", _describe(exc)
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


def _child(
    request: dict,
    limits: Limits,
    work: str,
    out: int,
    report: int,
    libc,
    layers: dict,
    views: dict[str, types.ModuleType],
) -> NoReturn:
    """In the forked child: confine this process, run the program, write the report."""
    try:
        os.setsid()
        if libc is not None:
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
            # No network at all; needs CAP_SYS_ADMIN, and without it the audit hook still
            # refuses sockets.
            libc.unshare(_CLONE_NEWNET)
        null = os.open(os.devnull, os.O_RDWR)
        for fd, target in ((null, 0), (out, 1), (out, 2), (report, 3)):
            os.dup2(fd, target)
        os.closerange(4, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        os.environ.clear()
        os.chdir(work)
        for module in (os, sys.modules[os.name]):  # for a program that reaches the real ones
            for name in _UNAUDITED:
                setattr(module, name, _audited(f"os.{name}"))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # oversized writes fail, not kill
        for number in (signal.SIGPROF, signal.SIGXCPU):
            signal.signal(number, signal.SIG_DFL)
        for kind, value in (
            (resource.RLIMIT_CPU, math.ceil(limits.cpu_seconds) + 1),  # backstop to the timer
            (resource.RLIMIT_AS, limits.memory_mb << 20),
            (resource.RLIMIT_FSIZE, max(_FILE_BYTES, limits.output_bytes)),
            (resource.RLIMIT_NPROC, 0),  # ignored for root: the audit hook refuses fork
            (resource.RLIMIT_CORE, 0),
            (resource.RLIMIT_NOFILE, _OPEN_FILES),
        ):
            resource.setrlimit(kind, (value, value))
        signal.setitimer(signal.ITIMER_PROF, limits.cpu_seconds)
        sys.setrecursionlimit(_RECURSION)
        try:
            if layers["landlock"]:
                _confine_files(libc, work, layers["landlock"])
            if layers["seccomp"]:
                _confine_syscalls(libc)
        except OSError as exc:  # worked when the worker started: never run unconfined
            error = f"the sandbox could not confine the program: {_describe(exc)}"
            failed = {"status": "error", "value": None, "error": error, "violation": False}
            _write_all(3, json.dumps(failed).encode())
            return
        result = _execute(request["code"], request["expression"], limits, work, views)
        _write_all(3, json.dumps(result).encode())
    finally:
        os._exit(0)


def _audited(event: str):
    """A stand-in for a function no audit event guards: it raises ``event``, and nothing else."""

    def audited(*args, **kwargs) -> None:
        sys.audit(event)

    return audited


def _syscall_filter(pid: int) -> list[tuple[int, int, int, int]]:
    """The seccomp program (classic BPF, ``(code, jt, jf, k)``) for a child whose pid is ``pid``."""
    load, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06  # BPF_LD|W|ABS, JMP|JEQ|K, JMP|JGE|K, RET|K
    program: list[tuple] = [  # (code, jump-if-true label, jump-if-false label, k)
        (load, None, None, 4),  # seccomp_data.arch
        (jeq, "next", "kill", _AUDIT_ARCH_X86_64),
        (load, None, None, 0),  # seccomp_data.nr
        (jge, "deny", "next", _X32_SYSCALL_BIT),
        *((jeq, "allow", "next", nr) for nr in sorted(_SYSCALLS_X86_64.values())),
        (jeq, "next", "deny", _TGKILL_X86_64),
        (load, None, None, 16),  # args[0], low half
        (jeq, "next", "deny", pid),
        (load, None, None, 20),  # args[0], high half
        (jeq, "allow", "deny", 0),
        ("deny", ret, _SECCOMP_RET_ERRNO | errno.EPERM),
        ("allow", ret, _SECCOMP_RET_ALLOW),
        ("kill", ret, _SECCOMP_RET_KILL),
    ]
    labels = {op[0]: i for i, op in enumerate(program) if isinstance(op[0], str)}

    def offset(label, i: int) -> int:
        return 0 if label in (None, "next") else labels[label] - i - 1

    return [
        (op[1], 0, 0, op[2])
        if isinstance(op[0], str)
        else (op[0], offset(op[1], i), offset(op[2], i), op[3])
        for i, op in enumerate(program)
    ]


def _confine_syscalls(libc) -> None:
    """Install the syscall filter on this process (irreversible, inherited by any child)."""
    import ctypes

    class Instruction(ctypes.Structure):
        _fields_ = [
            ("code", ctypes.c_uint16),
            ("jt", ctypes.c_uint8),
            ("jf", ctypes.c_uint8),
            ("k", ctypes.c_uint32),
        ]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Instruction))]

    instructions = _syscall_filter(os.getpid())
    array = (Instruction * len(instructions))(*instructions)
    program = Program(len(instructions), array)
    if (
        libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
        or libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0) != 0
    ):
        raise OSError(ctypes.get_errno(), "cannot install the sandbox's syscall filter")


def _landlock_version(libc) -> int:
    """The kernel's Landlock ABI version; 0 where it has none or has it disabled."""
    import ctypes

    version = libc.syscall(
        ctypes.c_long(_LANDLOCK_CREATE_RULESET), None, ctypes.c_size_t(0),
        ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION),
    )  # fmt: skip
    return max(int(version), 0)


def _confine_files(libc, work: str, version: int) -> None:
    """Landlock this process to ``work`` (irreversible): see ``_LANDLOCK_INSIDE``."""
    import ctypes

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    def call(number: int, *args) -> int:
        result = libc.syscall(ctypes.c_long(number), *args)
        if result < 0:
            raise OSError(ctypes.get_errno(), f"Landlock syscall {number} failed")
        return result

    handled = sum(bits for since, bits in _LANDLOCK_FS.items() if version >= since)
    fields = [handled]
    if version >= _LANDLOCK_NET[0]:
        fields.append(_LANDLOCK_NET[1])
    if version >= _LANDLOCK_SCOPED[0]:
        fields.append(_LANDLOCK_SCOPED[1])
    attr = (ctypes.c_uint64 * len(fields))(*fields)
    ruleset = call(
        _LANDLOCK_CREATE_RULESET,
        ctypes.byref(attr),
        ctypes.c_size_t(8 * len(fields)),
        ctypes.c_uint32(0),
    )
    directory = os.open(work, os.O_PATH | os.O_DIRECTORY)
    rule = PathBeneath(handled & _LANDLOCK_INSIDE, directory)
    call(
        _LANDLOCK_ADD_RULE,
        ctypes.c_int(ruleset),
        ctypes.c_int(_LANDLOCK_RULE_PATH_BENEATH),
        ctypes.byref(rule),
        ctypes.c_uint32(0),
    )
    os.close(directory)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "cannot set no_new_privs")
    call(_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0))
    os.close(ruleset)


def _kill_group(pid: int) -> None:
    for kill in (os.killpg, os.kill):  # the group exists only once the child has called setsid
        try:
            kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _collect(fd: int, pid: int, deadline: float, cap: int) -> tuple[bytes, bool]:
    """What the child writes until it closes the pipe, and whether it hit the deadline."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1e3):
            _kill_group(pid)
            return b"", True
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)
        cap -= len(chunk)
        if cap < 0:  # not a report this worker's child writes
            return b"", False


def _parse_report(payload: bytes) -> dict | None:
    """The child's report; None if it wrote none (or not one of ours)."""
    try:
        report = json.loads(payload)
        return {k: report[k] for k in ("status", "value", "error", "violation")}
    except (ValueError, TypeError, KeyError):
        return None


def _verdict(late: bool, status: int, cpu: float, limits: Limits) -> dict:
    """The report for a child that ended without writing one."""
    if late:
        outcome = ("timeout", f"wall time limit {limits.wall_seconds}s exceeded")
    elif os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        if number in (signal.SIGPROF, signal.SIGXCPU) or (
            number == signal.SIGKILL and cpu >= limits.cpu_seconds
        ):
            outcome = ("timeout", f"cpu time limit {limits.cpu_seconds}s exceeded")
        else:
            outcome = ("killed", f"killed by signal {signal.Signals(number).name}")
    else:
        outcome = ("error", f"the program exited with status {os.WEXITSTATUS(status)}")
    return {"status": outcome[0], "value": None, "error": outcome[1], "violation": False}


def _run_one(request: dict, base: str, libc, layers: dict) -> dict:
    """Fork a child for one program, wait for it, clean up; the reply for the pool."""
    limits = Limits(**request["limits"])
    views = _worker_views(limits.modules)
    root = tempfile.mkdtemp(dir=base)
    try:
        work = os.path.join(root, "work")  # the program's directory; its output file is not in it
        os.mkdir(work)
        out = os.open(os.path.join(root, "out"), os.O_RDWR | os.O_CREAT, 0o600)
        read, write = os.pipe()
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            _child(request, limits, work, out, write, libc, layers, views)
        os.close(write)
        cap = limits.output_bytes * 6 + _REPORT_SLACK  # a JSON escape is at most 6 bytes a byte
        payload, late = _collect(read, pid, start + limits.wall_seconds, cap)
        os.close(read)
        _kill_group(pid)  # whatever is left of its process group
        _, status, usage = os.wait4(pid, 0)
        seconds = time.monotonic() - start
        stdout = os.pread(out, limits.output_bytes + 1, 0)
        os.close(out)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report = _parse_report(payload) or _verdict(
        late, status, usage.ru_utime + usage.ru_stime, limits
    )
    if len(stdout) > limits.output_bytes and report["status"] == "ok":  # written past print()
        error = f"output limit {limits.output_bytes} bytes exceeded"
        report.update(status="killed", value=None, error=error)
    text = stdout[: limits.output_bytes].decode("utf-8", "replace")
    return {**report, "stdout": text, "seconds": seconds}


def _serve(base: str) -> None:
    """A worker's life: preload, say ready, then one program per request until stdin closes."""
    for name in (*ALLOWED_MODULES, *_ALWAYS_ALLOWED):
        __import__(name)
    for codec in _CODECS:
        "".encode(codec)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
    except (ImportError, OSError):
        libc = None
    layers = _kernel_layers(libc, base)
    gc.freeze()  # the collector leaves these objects, and their pages shared, alone in children
    requests, replies = os.dup(0), os.dup(1)
    os.dup2(2, 1)  # a stray print must not corrupt the replies
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    _send(replies, json.dumps(layers).encode())
    while True:
        try:
            request = json.loads(_receive(requests))
        except EOFError:
            return
        _send(replies, json.dumps(_run_one(request, base, libc, layers)).encode())


def _kernel_layers(libc, base: str) -> dict:
    """The kernel's layers that work here, each checked in a child that installs it and then
    must be refused what it stops: ``{"landlock": ABI version or 0, "seccomp": bool}``."""
    layers = {"landlock": 0, "seccomp": False}
    if libc is None:
        return layers
    version = _landlock_version(libc)
    inside = tempfile.mkdtemp(dir=base)
    try:
        if version and _refused_in_child(
            lambda: _confine_files(libc, inside, version), lambda: os.listdir("/")
        ):
            layers["landlock"] = version
    finally:
        os.rmdir(inside)
    if os.uname().machine == "x86_64" and _refused_in_child(
        lambda: _confine_syscalls(libc), lambda: os.kill(os.getppid(), 0)
    ):
        layers["seccomp"] = True
    return layers


def _refused_in_child(confine, attempt) -> bool:
    """Whether, in a forked child, ``confine()`` succeeds and then ``attempt()`` is refused."""
    pid = os.fork()
    if pid == 0:
        try:
            confine()
            attempt()
        except PermissionError:
            os._exit(0)
        except BaseException:
            pass
        os._exit(1)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


# ---- the pool, in the caller's process ---------------------------------------------------


class _Worker:
    """One worker process and its pipes."""

    def __init__(self, base: str):
        # Imported here rather than at the top: workers run this file, and subprocess would put
        # _posixsubprocess.fork_exec, which no audit event guards, into every program's process.
        import subprocess

        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-S", os.path.abspath(__file__), "--worker", base],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,
                env={},
            )
        except OSError as exc:
            raise SandboxError(f"cannot start a sandbox worker: {exc}") from exc

    def wait_ready(self) -> None:
        try:
            ready = _receive(self.process.stdout.fileno(), time.monotonic() + _READY_SECONDS)
            layers = json.loads(ready)
            self.layers = {"landlock": int(layers["landlock"]), "seccomp": bool(layers["seccomp"])}
        except (EOFError, TimeoutError, ValueError, KeyError) as exc:
            self.stop()
            raise SandboxError(f"a sandbox worker did not start: {exc}") from exc

    def alive(self) -> bool:
        return self.process.poll() is None

    def call(self, request: bytes, timeout: float) -> dict:
        _send(self.process.stdin.fileno(), request)
        return json.loads(_receive(self.process.stdout.fileno(), time.monotonic() + timeout))

    def stop(self) -> None:
        import subprocess

        try:
            self.process.stdin.close()  # an idle worker exits at end of input
            self.process.wait(_STOP_SECONDS)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()  # its child, if any, dies with it (PR_SET_PDEATHSIG)
            self.process.wait()
        self.process.stdout.close()


def _shutdown(workers: list[_Worker], base: str) -> None:
    for worker in workers:
        worker.stop()
    shutil.rmtree(base, ignore_errors=True)  # directories of workers killed mid-program


class SandboxError(RuntimeError):
    """The sandbox itself failed (a worker could not start); never a program's own failure.

    Defined here, not in ``selfplay.errors``: this file is also the worker's script, run with
    the standard library only (``python -I -S``)."""


class Sandbox:
    """A pool of workers that run programs under ``limits``; see the module docstring.
    Thread-safe; a context manager; workers are stopped on close, collection or exit."""

    def __init__(self, workers: int | None = None, limits: Limits = Limits()):
        count = workers if workers is not None else os.cpu_count() or 1
        if count < 1:
            raise ValueError(f"workers must be at least 1, got {count}")
        self.limits = limits
        self._base = os.path.realpath(tempfile.mkdtemp(prefix="selfplay-sandbox-"))
        self._workers: list[_Worker] = []
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._finalize = weakref.finalize(self, _shutdown, self._workers, self._base)
        try:
            self._workers.extend(_Worker(self._base) for _ in range(count))
            for worker in self._workers:
                worker.wait_ready()
                self._idle.put(worker)
        except SandboxError:
            self.close()
            raise

    @property
    def kernel_layers(self) -> tuple[str, ...]:
        """The kernel's layers programs run under here: ``"landlock"`` (files beneath the
        program's directory only; Linux 5.13+ with Landlock enabled) and ``"seccomp"`` (the
        syscall filter; x86-64 Linux). Without them the audit hook and the process limits are
        the outer layers."""
        with self._lock:
            return tuple(
                name
                for name in ("landlock", "seccomp")
                if all(w.layers[name] for w in self._workers)
            )

    @property
    def pids(self) -> list[int]:
        """Process ids of the current workers."""
        with self._lock:
            return [worker.process.pid for worker in self._workers]

    def run(self, code: str, expression: str | None = None, limits: Limits | None = None) -> Result:
        """Run ``code`` in a fresh namespace, then evaluate ``expression`` (if given) in it."""
        limits = limits if limits is not None else self.limits
        try:
            problem = _static_violation(code, "exec", limits.modules)
            if expression is not None:
                problem = problem or _static_violation(expression, "eval", limits.modules)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            return Result("error", None, "", _describe(exc), 0.0)
        if problem:
            return Result("error", None, "", problem, 0.0, violation=True)
        request = {"code": code, "expression": expression, "limits": dataclasses.asdict(limits)}
        if self._closed:
            raise SandboxError("the sandbox is closed")
        worker = self._idle.get()
        try:
            if not worker.alive():
                worker = self._replace(worker)
            payload = json.dumps(request).encode()
            try:
                return Result(**worker.call(payload, limits.wall_seconds + _GRACE_SECONDS))
            except (OSError, EOFError, TimeoutError, ValueError) as exc:
                if self._closed:
                    raise SandboxError("the sandbox was closed during the run") from exc
                worker = self._replace(worker)
                return Result("killed", None, "", f"the sandbox worker died: {exc}", 0.0)
        finally:
            self._idle.put(worker)

    def run_many(
        self, jobs: list[tuple[str, str | None]], limits: Limits | None = None
    ) -> list[Result]:
        """``run`` for each ``(code, expression)``, spread over the workers, in input order."""
        with ThreadPoolExecutor(len(self._workers)) as threads:
            return list(threads.map(lambda job: self.run(job[0], job[1], limits), jobs))

    def _replace(self, worker: _Worker) -> _Worker:
        """A started worker in place of ``worker``, which is stopped."""
        if self._closed:
            raise SandboxError("the sandbox is closed")
        worker.stop()
        fresh = _Worker(self._base)
        fresh.wait_ready()
        with self._lock:
            self._workers[self._workers.index(worker)] = fresh
        return fresh

    def close(self) -> None:
        """Stop the workers; idempotent."""
        self._closed = True
        self._finalize()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


_shared: Sandbox | None = None
_shared_lock = threading.Lock()


def shared() -> Sandbox:
    """The process's pool for environments that run programs, started on first use (its
    workers stop at exit)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Sandbox()
        return _shared


def run_shared(code: str, expression: str | None = None) -> Result:
    """``shared().run``, as a module-level function: it pickles by name, where a pool's bound
    method cannot (``datasets`` pickles a generator's closure, environments included)."""
    return shared().run(code, expression)


def equip(env):
    """``env``, given the shared pool as its ``executor`` when it runs programs (has one unset).

    Environments stay free of this module: one that executes code (``envs.programs``) has an
    ``executor`` attribute, None until the caller sets it.
    """
    if getattr(env, "executor", 0) is None:
        env.executor = run_shared
    return env


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    _serve(sys.argv[2])
