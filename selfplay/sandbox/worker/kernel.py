"""The kernel's layers (layer 4), installed in a program's process where the kernel offers them.

Landlock confines the process's files to its own directory (and, on newer kernels, refuses TCP
and signals to any other process); a seccomp filter (x86-64) allows only the system calls a
Python program computing a value needs, any other fails with EPERM. Both hold without the
audit hook. ``kernel_layers`` finds, in the worker, which of them work on this machine.
"""

from __future__ import annotations

import errno
import os
import tempfile

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


def confine_syscalls(libc) -> None:
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


def landlock_version(libc) -> int:
    """The kernel's Landlock ABI version; 0 where it has none or has it disabled."""
    import ctypes

    version = libc.syscall(
        ctypes.c_long(_LANDLOCK_CREATE_RULESET), None, ctypes.c_size_t(0),
        ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION),
    )  # fmt: skip
    return max(int(version), 0)


def confine_files(libc, work: str, version: int) -> None:
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


def kernel_layers(libc, base: str) -> dict:
    """The kernel's layers that work here, each checked in a child that installs it and then
    must be refused what it stops: ``{"landlock": ABI version or 0, "seccomp": bool}``."""
    layers = {"landlock": 0, "seccomp": False}
    if libc is None:
        return layers
    version = landlock_version(libc)
    inside = tempfile.mkdtemp(dir=base)
    try:
        if version and _refused_in_child(
            lambda: confine_files(libc, inside, version), lambda: os.listdir("/")
        ):
            layers["landlock"] = version
    finally:
        os.rmdir(inside)
    if os.uname().machine == "x86_64" and _refused_in_child(
        lambda: confine_syscalls(libc), lambda: os.kill(os.getppid(), 0)
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
