"""Sandbox: runs short untrusted Python programs (a Challenger's) and returns structured results.

A ``Sandbox`` is a pool of worker processes, each a slim interpreter (``python -I -S`` running
this file with ``--worker``, standard library only) that has imported the allowed modules once.
The caller never forks itself (a trainer has torch, threads and gigabytes mapped); a worker
forks a child per program, which is what makes it fast (a fork is about a millisecond, a fresh
interpreter tens). Requests and replies are length-prefixed JSON on the worker's stdin/stdout.

Defence in depth, outermost first:

1. **Static check**, in the caller, before any process is involved: the program and the
   expression are parsed; imports of modules outside ``Limits.modules``, names starting with
   ``__`` (bar ``__name__``), attributes starting with ``_`` (bar a few inert dunders such as
   ``__init__``) and a few handles on ``sys``/``builtins`` or string-keyed attribute lookups
   (``fractions.sys``, ``operator.attrgetter``, ...) are refused as violations.
2. **Restricted builtins**: no ``open``, ``eval``, ``exec``, ``compile``, ``getattr`` and the
   like; ``__import__`` hands out only allowed modules that are already loaded. Programs get
   no file API at all unless ``os`` is allowed.
3. **Audit hook** (``sys.addaudithook``) in the child: refuses opening, listing or changing any
   path outside the program's private directory, symlinks, ``chdir``, sockets, subprocesses,
   fork and exec, signals to other processes, environment changes, ctypes, ``gc``
   introspection, frame access (``gi_frame``, ``tb_frame``, ...), rlimit changes and imports of
   modules not yet loaded. A refusal is recorded, so ``Result.violation`` holds even when the
   program catches the exception.
4. **The child process**: its own session (the worker kills the whole process group), a new
   network namespace where the kernel allows it (no network at all), rlimits on CPU time,
   address space, file size, processes, core files and open files, an empty environment (the
   workers are started with one), a private temporary working directory that is always
   removed, fds 0-2 pointing at /dev/null and an output file (C-level writes cannot reach the
   worker's pipes), bounded ``print`` output, and a wall-clock deadline after which the worker
   kills it. A worker that dies is restarted by the pool.

This is a guard against programs a small model writes: mistakes, infinite loops, memory and
output floods, and the odd attempt to reach outside. It is not a security boundary against a
determined adversary: layers 1 and 2 can be reached past through eval-like library paths, and
such a program could then forge its own report. Layers 3 and 4 are what keep the outside
world safe; for adversarial code run the pool inside a container or VM.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
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
# os functions that raise no audit event but that a root process could misuse (device nodes,
# a new root, namespaces): in the child they are replaced by ones raising "os.<name>".
_UNAUDITED = ("mknod", "mkfifo", "chroot", "unshare", "setns")
_DENIED_EVENTS = frozenset(
    {"os.system", "os.fork", "os.forkpty", "os.exec", "os.spawn", "os.posix_spawn",
     "subprocess.Popen", "pty.spawn", "os.kill", "os.killpg", "os.putenv", "os.unsetenv",
     "os.chdir", "os.symlink", "object.__getattr__", "sys._current_frames", "sys.settrace",
     "sys.setprofile", *(f"os.{name}" for name in _UNAUDITED)}
)  # fmt: skip
_DENIED_PREFIXES = ("socket.", "ctypes.", "gc.", "resource.", "mmap.")

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


class SandboxError(RuntimeError):
    """The sandbox itself failed (a worker could not start); never a program's own failure."""


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


def _import_guard(modules: tuple[str, ...], flags: set[str]):
    """The programs' __import__: allowed modules that are already loaded, nothing else."""
    allowed = _ALWAYS_ALLOWED.union(modules)

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level or name.partition(".")[0] not in allowed:
            flags.add("violation")
            raise ImportError(f"import of {name!r} is not allowed")
        if name not in sys.modules:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return sys.modules[name] if fromlist else sys.modules[name.partition(".")[0]]

    return guarded_import


def _audit_hook(work: str, flags: set[str]):
    """The child's audit hook: refuses what reaches outside the process or its directory."""

    def inside(path) -> bool:
        if isinstance(path, int):  # an fd: where it points is unknown here
            return False
        real = os.path.realpath(os.fsdecode("." if path is None else path))
        return real == work or real.startswith(work + os.sep)

    def hook(event: str, args: tuple) -> None:
        if event in _PATH_EVENTS:
            outside = [args[i] for i in _PATH_EVENTS[event] if not inside(args[i])]
            if not outside:
                return
            refusal: Exception = PermissionError(
                f"{event} of {outside[0]!r} outside the sandbox's directory is not allowed"
            )
        elif event == "import":  # of a module not loaded before the hook
            refusal = ImportError(f"import of {args[0]!r} is not allowed")
            if args[0].startswith("encodings."):  # a codec not preloaded: an unknown encoding
                raise refusal
        elif event == "sys._getframe":  # stdlib callers (namedtuple, typing) expect ValueError
            raise ValueError("the call stack is not available in the sandbox")
        elif event in _DENIED_EVENTS or event.startswith(_DENIED_PREFIXES):
            refusal = PermissionError(f"{event} is not allowed in the sandbox")
        else:
            return
        flags.add("violation")
        raise refusal

    return hook


def _execute(code: str, expression: str | None, limits: Limits, work: str) -> dict:
    """Run the program in this confined process: its report, less stdout and timing."""
    flags: set[str] = set()
    reserve = bytes(_RESERVE)  # calloc'ed: costs no page faults until freed
    names = {k: v for k, v in vars(builtins).items() if k not in _REMOVED_BUILTINS}
    names["__import__"] = _import_guard(limits.modules, flags)
    namespace = {"__builtins__": names, "__name__": "__main__"}
    sys.stdout = sys.stderr = _Output(limits.output_bytes, flags)
    sys.addaudithook(_audit_hook(work, flags))
    value = None
    try:
        exec(compile(code, "<program>", "exec"), namespace)
        if expression is not None:
            value = repr(eval(compile(expression, "<expression>", "eval"), namespace))
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


def _child(request: dict, limits: Limits, work: str, out: int, report: int, libc) -> NoReturn:
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
        for name in limits.modules:
            try:
                __import__(name)
            except ImportError:
                pass  # the program's import then fails as an ordinary ModuleNotFoundError
        for module in (os, sys.modules[os.name]):
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
        result = _execute(request["code"], request["expression"], limits, work)
        _write_all(3, json.dumps(result).encode())
    finally:
        os._exit(0)


def _audited(event: str):
    """A stand-in for a function no audit event guards: it raises ``event``, and nothing else."""

    def audited(*args, **kwargs) -> None:
        sys.audit(event)

    return audited


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


def _run_one(request: dict, base: str, libc) -> dict:
    """Fork a child for one program, wait for it, clean up; the reply for the pool."""
    limits = Limits(**request["limits"])
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
            _child(request, limits, work, out, write, libc)
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
    gc.freeze()  # the collector leaves these objects, and their pages shared, alone in children
    requests, replies = os.dup(0), os.dup(1)
    os.dup2(2, 1)  # a stray print must not corrupt the replies
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    _send(replies, b"{}")
    while True:
        try:
            request = json.loads(_receive(requests))
        except EOFError:
            return
        _send(replies, json.dumps(_run_one(request, base, libc)).encode())


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
            _receive(self.process.stdout.fileno(), time.monotonic() + _READY_SECONDS)
        except (EOFError, TimeoutError) as exc:
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
