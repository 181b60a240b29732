"""An organism's folder on disk: replaced whole or not at all, and checked before reuse.

A trained organism is written to a scratch folder beside its destination,
``.<name>.tmp-<host>-<pid>``, then swapped in with two renames: the old folder (if any) to
``.<name>.old-<host>-<pid>``, the new one into place; only then is the old one deleted.
``organism.json`` is written last and lists every other file with its size, so a folder is
complete exactly when that file reads and every file it lists is there at that size.

A run killed part way leaves scratch folders behind. The next run on the same host deletes
those of processes that are gone (never those of a live one; those of other hosts it cannot
check, and leaves). If the kill fell between the two renames it renames the old organism back
into place: an interrupted run leaves the organism it found. A folder that is still
incomplete is never reused; ``pretrain`` trains it again.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

from selfplay.disk import alive

RESULT_FILE = "organism.json"
"""Training and evaluation record, plus the file list (``files``) that proves the folder whole."""
LEGACY_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
"""The files an organism.json written before the file list existed vouches for."""
SCRATCH_KINDS = ("tmp", "old")
"""Scratch folder kinds: a new organism being written, an old one renamed aside."""


def scratch(out: Path, kind: str, pid: int | None = None) -> Path:
    """The scratch folder of ``kind`` this process (or ``pid``) uses beside ``out``."""
    return out.with_name(f".{out.name}.{kind}-{socket.gethostname()}-{pid or os.getpid()}")


def save(out: Path, model, tokenizer, result: dict) -> None:
    """Write model, tokenizer and ``result`` (plus the file list) to a scratch folder, then
    swap it in for ``out``."""
    tmp = scratch(out, "tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    files = {
        str(path.relative_to(tmp)): path.stat().st_size
        for path in sorted(tmp.rglob("*"))
        if path.is_file()
    }
    (tmp / RESULT_FILE).write_text(json.dumps({**result, "files": files}, indent=2))
    install(tmp, out)


def install(tmp: Path, out: Path) -> None:
    """Put the complete folder ``tmp`` in place of ``out``: rename the old aside, rename the
    new in, delete the old. At no point is ``out`` a mix of the two."""
    out.parent.mkdir(parents=True, exist_ok=True)
    aside = None
    if out.exists():
        aside = scratch(out, "old")
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(out, aside)
    os.replace(tmp, out)
    if aside is not None:
        shutil.rmtree(aside)


def read_result(out: Path) -> dict:
    """The ``organism.json`` of a complete folder."""
    return json.loads((out / RESULT_FILE).read_text())


def update_result(out: Path, extra: dict) -> dict:
    """Add ``extra`` to the ``organism.json`` of a complete folder (replaced atomically, so a
    kill leaves the old record); return the new record."""
    result = {**read_result(out), **extra}
    part = out / f".{RESULT_FILE}.tmp-{os.getpid()}"
    part.write_text(json.dumps(result, indent=2))
    os.replace(part, out / RESULT_FILE)
    return result


def incomplete(out: Path) -> str | None:
    """Why the folder ``out`` cannot be reused (a file missing or of the wrong size); None
    when it is complete."""
    path = out / RESULT_FILE
    if not path.is_file():
        return f"no {RESULT_FILE}"
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return f"{RESULT_FILE} unreadable: {err}"
    if not isinstance(result, dict):
        return f"{RESULT_FILE} is not a mapping"
    files = result.get("files") or dict.fromkeys(LEGACY_FILES)
    for name, size in files.items():
        if not (out / name).is_file():
            return f"{name} missing"
        actual = (out / name).stat().st_size
        if size is not None and actual != size:
            return f"{name} has {actual} bytes, not {size}"
    return None


def recover(out: Path, console) -> None:
    """Clean up beside ``out`` after runs of this host that were killed while saving it:
    delete their scratch folders and, if ``out`` is missing, restore the old organism one of
    them had renamed aside. Folders of live processes and of other hosts are left alone."""
    if not out.parent.is_dir():
        return
    host, removed, foreign, asides = socket.gethostname(), [], [], []
    for path in sorted(out.parent.iterdir()):
        owner = _owner(path.name, out.name)
        if owner is None:
            continue
        kind, owner_host, pid = owner
        if owner_host not in ("", host):
            foreign.append(path.name)
        elif pid == os.getpid() or not alive(pid):
            (asides if kind == "old" else removed).append(path)
    if not out.exists():
        for aside in sorted(asides, key=lambda p: p.stat().st_mtime, reverse=True):
            if incomplete(aside) is None and _rename(aside, out):
                console.print(
                    f"Restored {out} from {aside.name}, left by a run killed while replacing it"
                )
                asides.remove(aside)
                break
    for path in removed + asides:
        shutil.rmtree(path, ignore_errors=True)
    if removed or asides:
        names = ", ".join(p.name for p in removed + asides)
        console.print(f"Removed {len(removed + asides)} folder(s) left by killed runs: {names}")
    if foreign:
        console.print(f"Left {', '.join(foreign)} (another host's run; it may be live)")


def _owner(name: str, out_name: str) -> tuple[str, str, int] | None:
    """(kind, host, pid) of a scratch folder of ``out_name`` (host "" in the old form
    ``.<name>.tmp-<pid>``); None for any other name."""
    for kind in SCRATCH_KINDS:
        prefix = f".{out_name}.{kind}-"
        if name.startswith(prefix):
            host, _, pid = name[len(prefix) :].rpartition("-")
            return (kind, host, int(pid)) if pid.isdigit() else None
    return None


def _rename(src: Path, dst: Path) -> bool:
    """Rename; False when a concurrent run got there first."""
    try:
        os.replace(src, dst)
    except OSError:
        return False
    return True
