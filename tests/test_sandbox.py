"""The sandbox: ordinary programs run, hostile ones are contained and reported, and the pool
and this process come through unharmed."""

import os
import signal
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
