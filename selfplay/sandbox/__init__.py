"""Sandbox: runs short untrusted Python programs (a Challenger's) and returns structured results.

A ``Sandbox`` is a pool of worker processes, each a slim interpreter (``python -I -S`` running
``start_worker.py --worker``, standard library only) that has imported the allowed modules
once. The caller never forks itself (a trainer has torch, threads and gigabytes mapped); a
worker forks a child per program, which is what makes it fast (a fork is about a millisecond,
a fresh interpreter tens). Requests and replies are length-prefixed JSON on the worker's
stdin/stdout.

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

Where each part lives: ``pool`` (the ``Sandbox``, in the caller's process) and, standard
library only, ``worker.rules`` (layer 1 and ``Limits``), ``worker.program`` (layers 2 and
3), ``worker.kernel`` (layer 4) and ``worker.serve`` (layer 5).
"""

from selfplay.errors import SandboxError
from selfplay.sandbox.pool import Result, Sandbox, equip, run_shared, shared
from selfplay.sandbox.worker.rules import ALLOWED_MODULES, Limits

__all__ = [
    "ALLOWED_MODULES",
    "Limits",
    "Result",
    "Sandbox",
    "SandboxError",
    "equip",
    "run_shared",
    "shared",
]
