"""Study configs for tests: a shipped config with texts replaced and studies under a temporary
folder, and the check that ``selfplay study`` refuses one in a single line."""

from __future__ import annotations

from pathlib import Path

from selfplay.cli import main

ROOT = Path(__file__).resolve().parents[1]
GROKKING = ROOT / "configs" / "studies" / "grokking.yaml"


def study_config(tmp_path: Path, source: Path = GROKKING, **replace: str) -> Path:
    """``source`` with each ``old`` text replaced by its ``new`` one, studies under tmp_path."""
    text = source.read_text() + f"\nstudies_dir: {tmp_path / 'studies'}\n"
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return path


def refused(path: Path, tmp_path: Path, capsys, message: str, *options: str) -> None:
    """``selfplay study path`` stops with one line naming the file and ``message``, exit
    status 2, and writes no study folder."""
    assert main(["study", str(path), *options]) == 2
    err = capsys.readouterr().err.strip()
    assert str(path) in err and message in err, err
    assert len(err.splitlines()) == 1, err
    assert not (tmp_path / "studies").exists()
