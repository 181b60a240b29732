"""Where a run writes: a folder checked writable before the run, a full disk turned into one
line (``DiskFull``, exit status 1) naming the path and the space left, and the scratch
folders that killed writers leave beside what they write."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from selfplay.errors import ConfigError, DiskFull

LOW_SPACE = 1 << 30
"""Bytes free below which torch's bare write errors are taken to mean a full disk."""


_TORCH_WRITE_FAILED = ("unexpected pos", "PytorchStreamWriter failed", "file write failed")
"""What torch's checkpoint writer says when a write comes up short, with no errno."""


@contextlib.contextmanager
def disk_full_is_one_line(run_dir: Path, then: str) -> Iterator[None]:
    """Turn an error that a full disk caused, inside, into a ``DiskFull`` naming the path and
    the space left, then saying ``then`` (what to do); any other error passes unchanged.

    A full disk shows as ENOSPC from Python, pyarrow or safetensors, but torch's checkpoint
    writer says only ``unexpected pos N vs M`` or ``PytorchStreamWriter failed ...``: that is
    taken for a full disk when under ``LOW_SPACE`` is left where the run writes.
    """
    try:
        yield
    except Exception as err:
        message = disk_full_message(err, run_dir)
        if message is None:
            raise
        raise DiskFull(f"{message}; {then}") from err


def disk_full_message(err: BaseException, run_dir: Path) -> str | None:
    """``<path>: the disk is full (<free> free): <what failed>`` when ``err`` or an error it
    arose from is a write that failed for want of space; None otherwise."""
    chain: list[BaseException] = []
    e: BaseException | None = err
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    free = _free_bytes(run_dir)
    for e in chain:
        full = isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)
        if full or "No space left on device" in str(e) or "Disk quota exceeded" in str(e):
            where = getattr(e, "filename", None) or run_dir
            return f"{where}: the disk is full ({_size(free)} free): {_first_line(e)}"
    torch_failed = [e for e in chain if any(m in str(e) for m in _TORCH_WRITE_FAILED)]
    if torch_failed and free is not None and free < LOW_SPACE:
        return f"{run_dir}: the disk is full ({_size(free)} free): {_first_line(torch_failed[0])}"
    return None


def _free_bytes(path: Path) -> int | None:
    """Bytes free to this user on the disk holding ``path`` (or its nearest existing parent)."""
    for folder in (path, *path.parents):
        try:
            return shutil.disk_usage(folder).free
        except OSError:
            continue
    return None


def _size(n: int | None) -> str:
    if n is None:
        return "unknown space"
    return f"{n / 2**20:.0f} MiB" if n < 2**30 else f"{n / 2**30:.1f} GiB"


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def check_writable(folder: Path, source: str, key: str) -> None:
    """A ConfigError naming ``key`` when ``folder`` (created later if missing) could not be
    written: it is a file, it lies under a file, or the nearest folder that exists is read-only."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing == folder and not folder.is_dir():
        raise ConfigError(f"{source}: key '{key}': {folder} is a file, not a folder")
    if not existing.is_dir():
        raise ConfigError(f"{source}: key '{key}': {folder} is under {existing}, a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is" if existing == folder else f"would be made in {existing}, which is"
        raise ConfigError(f"{source}: key '{key}': {folder} {what} not writable")


def alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # someone else's process
        return True
    return True


REPLACED = "replaced"
"""The scratch kind of a folder ``replace_dir`` set aside: ``.<name>.replaced-<pid>``."""


def replace_dir(tmp: Path, out: Path) -> None:
    """Rename the finished folder ``tmp`` to ``out``. An existing ``out`` is set aside first
    (``.<name>.replaced-<pid>``) and deleted only once ``tmp`` is in place; if that rename
    fails, it is put back."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.exists():
        os.replace(tmp, out)
        return
    old = out.with_name(f".{out.name}.{REPLACED}-{os.getpid()}")
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def stale_scratch(out: Path) -> list[Path]:
    """The scratch folders ``.<name>.<kind>-<pid>`` beside ``out`` whose process is gone: what a
    writer killed while building or replacing ``out`` left (a live writer's are not listed)."""
    if not out.parent.is_dir():
        return []
    found = []
    for path in sorted(out.parent.glob(f".{out.name}.*-*")):
        pid = path.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not alive(int(pid)):
            found.append(path)
    return found
