"""The pool's protocol with its workers: length-prefixed JSON over pipes."""

from __future__ import annotations

import os
import select
import time


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``, however many writes that takes."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def send(fd: int, payload: bytes) -> None:
    """One message: its length in 4 bytes, then ``payload``."""
    write_all(fd, len(payload).to_bytes(4, "big") + payload)


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


def receive(fd: int, deadline: float | None = None) -> bytes:
    """The next message's payload; TimeoutError past ``deadline``, EOFError when closed."""
    return _read_exact(fd, int.from_bytes(_read_exact(fd, 4, deadline), "big"), deadline)
