"""The sandbox: ordinary programs run, hostile ones are contained and reported, and the pool
and this process come through unharmed."""

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from selfplay.sandbox import ALLOWED_MODULES, Limits, Sandbox

LIMITS = Limits(cpu_seconds=1, wall_seconds=2)
SLACK = 3.0  # seconds beyond the wall limit a timed-out run may take to come back
WITH_OS = Limits(cpu_seconds=1, wall_seconds=2, modules=ALLOWED_MODULES + ("os",))


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(workers=2, limits=LIMITS) as box:
        yield box


@pytest.fixture(autouse=True)
def still_healthy(sandbox):
    """After every test: the pool still runs programs and this process is where it was."""
    cwd, environ = os.getcwd(), _environ()
    yield
    result = sandbox.run("x = 1", "x")
    assert (result.status, result.value) == ("ok", "1"), result
    assert os.getcwd() == cwd and _environ() == environ


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}  # pytest's own


def refused(result, text: str = "") -> bool:
    return result.status == "error" and result.violation and text in result.error


# ---- ordinary programs ------------------------------------------------------------------


def test_function_with_expression(sandbox):
    result = sandbox.run("def f(x):\n    return sorted(x)", "f([3, 1, 2])")
    assert (result.status, result.value, result.error, result.violation) == (
        "ok",
        "[1, 2, 3]",
        "",
        False,
    )


def test_allowed_imports_and_classes(sandbox):
    code = """
import math
from itertools import permutations
from collections import Counter, namedtuple
from typing import List

Point = namedtuple("Point", "x y")

class Base:
    def __init__(self, n: int):
        self.n = n

class Shape(Base):
    def __init__(self, n: int):
        super().__init__(n)

    def area(self) -> float:
        return math.pi * self.n**2

def f(xs: List[int]):
    return len(list(permutations(xs))), Counter("abca").most_common(1), Point(1, 2)
"""
    result = sandbox.run(code, "(round(Shape(1).area(), 3), f([1, 2, 3]))")
    assert result.status == "ok", result
    assert result.value == "(3.142, (6, [('a', 2)], Point(x=1, y=2)))"


def test_print_is_captured(sandbox):
    result = sandbox.run("print('hello')\nprint(1, 2, sep='-')")
    assert (result.status, result.value, result.stdout) == ("ok", None, "hello\n1-2\n")


def test_ordinary_exception_is_an_error_not_a_violation(sandbox):
    result = sandbox.run("print('before')\nx = 1 / 0")
    assert result.status == "error" and not result.violation
    assert result.error == "ZeroDivisionError: division by zero"
    assert result.stdout == "before\n"


def test_syntax_error(sandbox):
    result = sandbox.run("def f(:\n    pass")
    assert result.status == "error" and not result.violation
    assert result.error.startswith("SyntaxError: ") and "line 1" in result.error
    assert sandbox.run("x = 1", "x +").error.startswith("SyntaxError: ")


def test_run_many_preserves_order(sandbox):
    jobs = [(f"def f():\n    return {i}", "f()") for i in range(20)] + [("x = 1 / 0", None)]
    results = sandbox.run_many(jobs)
    assert [r.value for r in results[:20]] == [str(i) for i in range(20)]
    assert results[20].status == "error"


def test_limits_are_validated():
    for field, value in (("cpu_seconds", 0), ("wall_seconds", -1), ("memory_mb", 4)):
        with pytest.raises(ValueError, match=field):
            Limits(**{field: value})
    with pytest.raises(ValueError, match="modules"):
        Limits(modules=("os.path",))


# ---- hostile programs -------------------------------------------------------------------


def test_infinite_loop_times_out(sandbox):
    start = time.monotonic()
    result = sandbox.run("while True:\n    pass")
    assert time.monotonic() - start < LIMITS.wall_seconds + SLACK
    assert result.status == "timeout" and not result.violation
    assert "time limit" in result.error


def test_sleeping_program_hits_the_wall_limit(sandbox):
    # `time` is not allowed by default (it makes results depend on the clock, and a sleeping
    # program is then impossible anyway); allowing it here exercises the wall-clock deadline,
    # which a program that burns no CPU reaches before any CPU limit.
    limits = Limits(cpu_seconds=1, wall_seconds=2, modules=ALLOWED_MODULES + ("time",))
    start = time.monotonic()
    result = sandbox.run("import time\nwhile True:\n    time.sleep(0.1)", limits=limits)
    assert time.monotonic() - start < limits.wall_seconds + SLACK
    assert (result.status, result.error) == ("timeout", "wall time limit 2.0s exceeded")


@pytest.mark.parametrize(
    "code",
    [
        "x = [0] * 10**10",
        "s = 'a' * 10**10",
        "x = []\nwhile True:\n    x.append(bytearray(10**6))",
    ],
)
def test_memory_bombs_are_killed(sandbox, code):
    result = sandbox.run(code)
    assert (result.status, result.error) == ("killed", "memory limit 256 MB exceeded")


@pytest.mark.parametrize(
    "call, event",
    [
        ("while True:\n    os.fork()", "os.fork"),  # a fork bomb, stopped by the audit hook
        ("os.system('true')", "os.system"),
        ("os.execv('/bin/true', ['true'])", "os.exec"),
        ("os.kill(os.getppid(), 9)", "os.kill"),
        ("os.putenv('PATH', '')", "os.putenv"),
        ("os.mknod('disk', 0o60600, os.makedev(8, 0))", "os.mknod"),  # no audit event of its own
        ("os.symlink('/etc', 'etc')", "os.symlink"),
    ],
)
def test_process_and_system_calls_are_refused(sandbox, call, event):
    result = sandbox.run(f"import os\n{call}", limits=WITH_OS)
    assert refused(result, f"PermissionError: {event} is not allowed"), result


def test_fork_bomb_cannot_import_os(sandbox):
    result = sandbox.run("import os\nwhile True:\n    os.fork()")
    assert refused(result, "ImportError: import of 'os' is not allowed"), result


def test_violation_is_reported_even_when_caught(sandbox):
    code = "import os\ntry:\n    os.fork()\nexcept Exception:\n    pass"
    result = sandbox.run(code, "'carried on'", limits=WITH_OS)
    assert (result.status, result.value, result.violation) == ("ok", "'carried on'", True)


def test_open_is_not_offered(sandbox, tmp_path):
    target = tmp_path / "open.txt"
    result = sandbox.run(f"open({str(target)!r}, 'w').write('x')")
    assert refused(result, "NameError: name 'open' is not available"), result
    assert not target.exists()


@pytest.mark.parametrize("where", ["tmp_path", "/tmp"])
def test_writing_outside_is_refused(sandbox, tmp_path, where):
    folder = tmp_path if where == "tmp_path" else "/tmp"
    target = os.path.join(folder, f"sandbox-escape-{uuid.uuid4().hex}.txt")
    code = f"import os\nfd = os.open({target!r}, os.O_WRONLY | os.O_CREAT)\nos.write(fd, b'x')"
    result = sandbox.run(code, limits=WITH_OS)
    assert refused(result, "outside the sandbox's directory"), result
    assert not os.path.exists(target)


def test_deleting_outside_is_refused(sandbox, tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("precious")
    for code in (
        f"import os\nos.remove({str(target)!r})",
        f"import os\nos.rename({str(target)!r}, 'x')",
    ):
        assert refused(sandbox.run(code, limits=WITH_OS), "outside"), code
    assert target.read_text() == "precious"


def test_writing_inside_its_own_directory_is_allowed_and_private(sandbox):
    code = """
import os
fd = os.open("x.txt", os.O_WRONLY | os.O_CREAT)
os.write(fd, b"hi")
os.close(fd)
"""
    result = sandbox.run(code, "sorted(os.listdir('.'))", limits=WITH_OS)
    assert (result.status, result.value, result.violation) == ("ok", "['x.txt']", False)
    assert sandbox.run("import os", "os.listdir('.')", limits=WITH_OS).value == "[]"


def test_sockets_are_refused(sandbox):
    limits = Limits(cpu_seconds=1, wall_seconds=2, modules=ALLOWED_MODULES + ("socket",))
    for call in (
        "socket.socket()",
        "socket.create_connection(('127.0.0.1', 80), timeout=1)",
        "socket.getaddrinfo('localhost', 80)",
    ):
        result = sandbox.run("import socket", call, limits=limits)
        assert refused(result, "socket."), (call, result)
    assert refused(sandbox.run("import socket"), "import of 'socket' is not allowed")


@pytest.mark.parametrize("module", ["os", "subprocess", "ctypes", "sys", "shutil"])
def test_dangerous_imports_are_refused(sandbox, module):
    for code in (f"import {module}", f"from {module} import *", f"import {module} as m"):
        result = sandbox.run(code)
        assert refused(result, f"import of {module!r} is not allowed"), result


@pytest.mark.parametrize(
    "code",
    [
        "__import__('os')",
        "().__class__.__base__.__subclasses__()",
        "import random\nrandom._os",
        "import fractions\nfractions.sys.modules",
        "import operator\noperator.attrgetter('__class__')(())",
        "match ():\n    case object(__class__=c):\n        pass",
        "f = lambda: 0\nf.__globals__",
        "__builtins__",
    ],
)
def test_static_check_refuses_escapes(sandbox, code):
    result = sandbox.run(code)
    assert refused(result) and result.seconds == 0.0, result


def test_frame_access_is_refused(sandbox):
    result = sandbox.run("g = (x for x in [1])\nframe = g.gi_frame")
    assert refused(result, "object.__getattr__"), result


def test_environment_is_not_visible(monkeypatch):
    monkeypatch.setenv("SELFPLAY_SECRET", "hunter2")
    with Sandbox(workers=1, limits=WITH_OS) as box:
        results = [
            box.run("import os", "os.environ.get('SELFPLAY_SECRET')"),
            box.run("import os\nprint(dict(os.environ))"),
            box.run("import os", "os.open('/proc/self/environ', os.O_RDONLY)"),
            box.run("data = open('/proc/self/environ').read()"),
        ]
    assert results[0].value == "None"
    assert results[1].status == "ok"
    assert refused(results[2], "outside") and refused(results[3], "'open'")
    assert not any("hunter2" in f"{r.value}{r.stdout}{r.error}" for r in results)


def test_output_flood_is_stopped(sandbox):
    start = time.monotonic()
    result = sandbox.run("while True:\n    print('x' * 10**6)")
    assert time.monotonic() - start < LIMITS.wall_seconds + SLACK
    assert (result.status, result.error) == ("killed", "output limit 65536 bytes exceeded")
    assert 0 < len(result.stdout.encode()) <= LIMITS.output_bytes


def test_huge_value_is_capped(sandbox):
    result = sandbox.run("x = 'y' * 10**6", "x")
    assert (result.status, result.value) == ("killed", None)
    assert "output limit" in result.error


def test_deep_recursion_is_contained(sandbox):
    result = sandbox.run("def f(n):\n    return f(n + 1)", "f(0)")
    assert result.status == "error" and not result.violation
    assert result.error.startswith("RecursionError")


def test_death_by_signal_is_killed(sandbox):
    result = sandbox.run("import os\nos.abort()", limits=WITH_OS)
    assert (result.status, result.error) == ("killed", "killed by signal SIGABRT")


def _wait_until_dead(pid: int) -> None:
    """Until ``pid`` is a zombie or gone (it is not ours to reap)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rpartition(")")[2].split()[0] in ("Z", "X"):
                    return
        except FileNotFoundError:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not die")


def test_worker_killed_from_outside_is_replaced(sandbox):
    victim = sandbox.pids[0]
    os.kill(victim, signal.SIGKILL)
    _wait_until_dead(victim)
    results = sandbox.run_many([("x = 2", "x * 21")] * 6)
    assert [r.value for r in results] == ["42"] * 6
    assert victim not in sandbox.pids and len(sandbox.pids) == 2


def test_temporary_directories_are_removed(sandbox):
    sandbox.run_many([("x = 1", None), ("while True:\n    pass", None), ("x = 1 / 0", None)])
    assert os.listdir(sandbox._base) == []


def test_close_stops_the_workers():
    box = Sandbox(workers=2, limits=LIMITS)
    pids = box.pids
    box.close()
    box.close()
    for pid in pids:
        _wait_until_dead(pid)
    assert not os.path.exists(box._base)


# ---- escapes found by hand, and the classes behind them ---------------------------------

WITH_SYS = Limits(cpu_seconds=1, wall_seconds=2, modules=ALLOWED_MODULES + ("sys",))


@pytest.fixture
def victim():
    """A process outside the sandbox that no program may signal."""
    process = subprocess.Popen(["sleep", "60"])
    yield process
    assert process.poll() is None, "a program killed a process outside the sandbox"
    process.kill()
    process.wait()


def test_string_annotations_meet_the_static_check(sandbox):
    # singledispatch resolves a string annotation with typing's own eval, which the program's
    # restricted builtins and the static check never saw: it handed out the real os module.
    code = """
import functools, random
@functools.singledispatch
def g(x):
    return 0
box = []
def f(x: "(box.append(random._os.getcwd()), int)[1]"):
    return 1
g.register(f)
"""
    result = sandbox.run(code, "box")
    assert refused(result, "compiled code breaks a rule: AttributeError: attribute '_os'"), result
    forward = sandbox.run("import typing\nref = typing.ForwardRef('random._os')")
    assert refused(forward, "attribute '_os' is not allowed"), forward


def test_string_annotations_resolve_in_the_programs_namespace(sandbox):
    # The program is the main module: a class's annotations are not looked up in the worker's.
    code = """
import functools
@functools.singledispatch
def g(x):
    return "other"
class C:
    pass
def f(x: "C"):
    return "C"
g.register(f)
box = []
def leak(x: "(box.append(shutil), int)[1]"):
    return 1
"""
    assert sandbox.run(code, "g(C()), g(1)").value == "('C', 'other')"
    leaked = sandbox.run(code + "g.register(leak)", "box")
    assert leaked.status == "error" and "NameError: name 'shutil'" in leaked.error, leaked


@pytest.mark.parametrize(
    "code, expression",
    [
        ("import typing", "typing.types.CodeType"),
        ("import copy", "copy.types"),
        ("import statistics", "statistics.sys"),
        ("import re", "re.enum"),
        ("from operator import *", "attrgetter"),
        ("import functools, random\ndef g():\n    pass\n"
         "functools.update_wrapper(g, random.seed, (), ('__globals__',))", "_os"),
    ],
)  # fmt: skip
def test_allowed_modules_hand_out_no_other_modules(sandbox, code, expression):
    result = sandbox.run(code, expression)
    assert result.status == "error" and result.value is None, result


def test_views_of_allowed_modules_reach_only_allowed_modules():
    """The search: every module reachable from an allowed module by public names is itself an
    allowed module's view, and no view offers a route to attributes by string."""
    import functools
    import importlib
    import types

    from selfplay.sandbox.worker.program import module_views
    from selfplay.sandbox.worker.rules import DENIED_NAMES

    for name in ALLOWED_MODULES:
        importlib.import_module(name)
    views = module_views(ALLOWED_MODULES)
    real = {id(module) for module in sys.modules.values()}
    seen, todo = set(), [views[name] for name in ALLOWED_MODULES]
    while todo:
        view = todo.pop()
        if id(view) in seen:
            continue
        seen.add(id(view))
        assert id(view) not in real, f"{view.__name__} is a real module"
        assert view.__name__.partition(".")[0] in ALLOWED_MODULES
        for attr, value in vars(view).items():
            if attr in ("__package__", "__loader__", "__spec__"):
                assert value is None  # what every new module has
            else:
                assert not attr.startswith("_") or attr in ("__name__", "__doc__", "__all__")
            assert attr not in DENIED_NAMES, f"{view.__name__}.{attr}"
            assert value is not functools.update_wrapper and value is not functools.wraps
            if isinstance(value, types.ModuleType):
                assert any(value is v for v in views.values()), f"{view.__name__}.{attr}"
                todo.append(value)
    assert views["collections"].abc is views["collections.abc"]


def test_ordinary_use_of_every_allowed_module_is_no_violation(sandbox):
    code = """
import bisect, cmath, collections, copy, decimal, fractions, functools, heapq, itertools
import math, numbers, operator, random, re, statistics, string, typing
from collections import namedtuple, Counter, defaultdict, deque, OrderedDict
from collections.abc import Iterable
from typing import NamedTuple, Generic, TypeVar, Optional

T = TypeVar("T")

class Box(Generic[T]):
    def __init__(self, item: T) -> None:
        self.item = item

class Pair(NamedTuple):
    a: int
    b: "Optional[int]" = None

@functools.total_ordering
class Money:
    def __init__(self, cents):
        self.cents = cents
    def __eq__(self, other):
        return self.cents == other.cents
    def __lt__(self, other):
        return self.cents < other.cents

@functools.lru_cache(maxsize=None)
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)

@functools.singledispatch
def kind(x):
    return "thing"

@kind.register
def _(x: int):
    return "int"

Money.currency = "EUR"
rng = random.Random(3)
heap = [5, 1, 4]
heapq.heapify(heap)
point = namedtuple("Point", "x y")(1, 2)
out = (
    fib(30), kind(1), kind("a"), Money(1) <= Money(2), Money.currency, Box(3).item,
    Pair(1), point.y, Counter("abca")["a"], copy.deepcopy({"a": [1, 2]}),
    str(decimal.Decimal("1.1") + decimal.Decimal("2.2")), fractions.Fraction(1, 3) * 3,
    statistics.mean([1, 2, 3, 4]), bisect.bisect([1, 3, 5], 4), heap[0], rng.randint(1, 6),
    re.sub(r"\\d", "#", "a1b2"), string.Template("$x!").substitute(x="hi"),
    list(itertools.islice(itertools.count(), 3)), math.comb(5, 2), cmath.sqrt(-1),
    isinstance(3, numbers.Integral), operator.itemgetter(1)([7, 8]),
    isinstance([], Iterable), deque([1, 2]).pop(), dict(OrderedDict(a=1)),
    typing.get_origin(typing.List[int]) is list, defaultdict(int)["k"],
)
"""
    result = sandbox.run(code, "out")
    assert result.status == "ok" and not result.violation, result
    assert result.value.startswith("(832040, 'int', 'thing', True, 'EUR', 3, Pair(a=1, b=None)")


def test_the_audit_hook_holds_its_own_references(sandbox, tmp_path):
    # The hook looked os.path.realpath up on every event: a program that replaced it turned
    # every path check off.
    secret = tmp_path / "secret"
    secret.write_text("outside")
    code = f"import os\nos.path.realpath = lambda p: os.getcwd()\nx = os.listdir({str(tmp_path)!r})"
    assert refused(sandbox.run(code, "x", limits=WITH_OS), "os.listdir"), code
    for replace in (
        "sys.modules['posixpath'].realpath = lambda p: '.'",
        "sys.modules['posixpath'].join = lambda *p: '.'",
        "sys.modules['os'].fspath = lambda p: '.'",
        "sys.modules['os'].fsdecode = lambda p: '.'",
    ):
        code = f"import sys\n{replace}\nx = sys.modules['io'].open({str(secret)!r}).read()"
        result = sandbox.run(code, "x", limits=WITH_SYS)
        assert refused(result, "PermissionError: open of"), (replace, result)


def test_a_path_object_cannot_lie_to_the_hook(sandbox, tmp_path):
    # The hook never calls a program's __fspath__ (it could answer the check and the open
    # differently): a path it is not handed as str or bytes is outside.
    secret = tmp_path / "secret"
    secret.write_text("outside")
    code = f"""
import sys
class Liar:
    calls = 0
    def __fspath__(self):
        Liar.calls += 1
        return {str(secret)!r} if Liar.calls % 2 else "inside"
x = sys.modules['posix'].read(sys.modules['posix'].open(Liar(), 0), 100)
"""
    assert refused(sandbox.run(code, "x", limits=WITH_SYS), "open of"), code


def test_pidfd_cannot_signal_a_process_outside(sandbox, victim):
    # os.pidfd_open raises no audit event; with signal.pidfd_send_signal it killed a process.
    for code in (
        f"import os\nfd = os.pidfd_open({victim.pid})",
        f"import sys\nfd = sys.modules['posix'].pidfd_open({victim.pid})",
    ):
        limits = WITH_OS if "import os" in code else WITH_SYS
        assert refused(sandbox.run(code, "fd", limits=limits), "os.pidfd_open"), code


@pytest.mark.parametrize(
    "code, text",
    [
        ("x = sys.modules['io'].open('/etc/passwd').read()", "open of '/etc/passwd'"),
        ("sys.modules['posix'].kill({pid}, 9)", "os.kill"),
        ("sys.modules['posix'].setuid(1)", "os.setuid"),
        ("x = sys.modules['ctypes'].pythonapi.Py_GetVersion()", "ctypes."),
        ("x = sys.modules['ctypes'].string_at(id(1), 8)", "ctypes.string_at"),
        ("sys.audit('a.new.event.nobody.listed')", "a.new.event.nobody.listed is not allowed"),
        ("sys.settrace(print)", "sys.settrace"),
        ("sys.modules['gc'].get_objects()", "gc.get_objects"),
    ],
)
def test_a_program_holding_the_real_modules_stays_contained(sandbox, victim, code, text):
    """As a program that got past layers 1 and 2 would: every module at hand. The audit hook
    refuses what it does not know to be harmless (``sys.audit`` of a new event included)."""
    result = sandbox.run("import sys\n" + code.format(pid=victim.pid), limits=WITH_SYS)
    assert refused(result, text), result


def test_threads_cannot_start_under_the_syscall_filter(sandbox):
    if "seccomp" not in sandbox.kernel_layers:
        pytest.skip("no seccomp syscall filter on this machine")
    code = "import sys\nsys.modules['_thread'].start_new_thread(print, ())"
    result = sandbox.run(code, limits=WITH_SYS)
    assert result.status == "error" and "can't start new thread" in result.error, result


def test_kernel_layers_hold_without_the_audit_hook(tmp_path, victim):
    """The outer layers alone, in a forked process with no audit hook at all: Landlock keeps
    files outside its directory out of reach, seccomp refuses signals, pidfds and sockets."""
    import ctypes
    import socket

    from selfplay.sandbox.worker.kernel import confine_files, confine_syscalls, landlock_version

    libc = ctypes.CDLL(None, use_errno=True)
    version = landlock_version(libc)
    if not version or os.uname().machine != "x86_64":
        pytest.skip("Landlock or seccomp is not available here")
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "secret").write_text("outside")
    attempts = [
        lambda: open(tmp_path / "secret").read(),
        lambda: open(tmp_path / "new", "w"),
        lambda: os.listdir("/"),
        lambda: os.kill(victim.pid, signal.SIGKILL),
        lambda: os.pidfd_open(victim.pid),
        lambda: socket.socket(),
        lambda: os.setuid(1),
        lambda: os.fork(),
    ]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            confine_files(libc, str(work), version)
            confine_syscalls(libc)
            with open(work / "inside", "w") as file:  # its own directory stays usable
                file.write("ok")
            for bit, attempt in enumerate(attempts):
                try:
                    attempt()
                except PermissionError:
                    continue
                except OSError as exc:
                    code |= 0 if exc.errno in (1, 13) else 1 << bit
                else:
                    code |= 1 << bit
        except BaseException:
            code = 255
        os.write(write, code.to_bytes(2, "big"))
        os._exit(0)
    os.close(write)
    code = int.from_bytes(os.read(read, 2), "big")
    os.waitpid(pid, 0)
    os.close(read)
    assert code == 0, [i for i in range(len(attempts)) if code >> i & 1]
    assert (work / "inside").read_text() == "ok"


def test_kernel_layers_are_reported(sandbox):
    import ctypes

    from selfplay.sandbox.worker.kernel import landlock_version

    expected = ("landlock",) if landlock_version(ctypes.CDLL(None)) else ()
    expected += ("seccomp",) if os.uname().machine == "x86_64" else ()
    assert set(sandbox.kernel_layers) <= {"landlock", "seccomp"}
    if os.environ.get("CI"):  # CI's machine has both; a laptop may not
        assert sandbox.kernel_layers == expected
