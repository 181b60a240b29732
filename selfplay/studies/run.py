"""Run a study: every arm at every seed, locally one after another or as parallel Ray tasks,
then the measures over seeds, the rule, ``study.json`` and ``study.html``.

A study folder is ``<studies_dir>/<name>[-quick]-<time>/``:
- ``study_config.json``: the config as loaded, with ``--quick`` and each arm's settings;
- ``shared/``: what the kind's ``prepare`` made once for every arm (the bands kind's base
  draws);
- ``arms/<arm>/seed-<k>/result.json``: one arm at one seed, written atomically when it
  finishes; ``--resume`` reruns only the units that lack one;
- ``study.json`` and ``study.html``: written last, atomically.
Each unit depends only on its settings and seed (threads are fixed by the settings), so a
local run and a Ray run give the same numbers.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from selfplay.analysis.reading import read_json
from selfplay.analysis.stats import seed_summary
from selfplay.checkpoints import write_json_atomic, write_text_atomic
from selfplay.config.strict import from_dict
from selfplay.disk import check_writable
from selfplay.errors import ConfigError, StudyError
from selfplay.studies.conclusion import decide
from selfplay.studies.config import StudyConfig, load_study
from selfplay.studies.kinds import KINDS

RESULT = "result.json"
SHARED = "shared"
"""The folder of work the arms share (made once by the kind's ``prepare``)."""
CONFIG = "study_config.json"


def run_study(
    path: str | Path,
    *,
    quick: bool = False,
    resume: bool | str | Path = False,
    ray_address: str | None = None,
    console=None,
) -> Path:
    """Run (or resume) the study at ``path``; return its folder, with study.json and
    study.html written."""
    from rich.console import Console

    console = console or Console()
    config, settings = load_study(path, quick)
    stored = json.loads(
        json.dumps(
            {
                "config": asdict(config),
                "quick": quick,
                "arm_settings": {name: asdict(s) for name, s in settings.items()},
            }
        )
    )
    folder = _folder(config, path, stored, quick, resume)
    seeds = config.quick.seeds if quick else config.seeds
    units = [(arm.name, seed) for arm in config.arms for seed in seeds]
    todo = [(a, s) for a, s in units if not (_unit(folder, a, s) / RESULT).exists()]
    if len(todo) < len(units):
        console.print(f"Reusing {len(units) - len(todo)} finished arm runs in {folder}")
    start, started = time.perf_counter(), time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if todo:
        console.print(
            f"Study {config.name}{' (quick)' if quick else ''}: {len(todo)} arm runs "
            f"({len(config.arms)} arms x {len(seeds)} seeds) "
            + (f"on Ray ({ray_address})" if ray_address else "in this process")
        )
        try:
            prepare = getattr(KINDS[config.kind], "prepare", None)
            if prepare is not None:
                for arm in dict.fromkeys(a for a, _ in todo):
                    prepare(settings[arm], console, folder / SHARED)
            if ray_address:
                _run_on_ray(config, settings, todo, folder, ray_address, console)
            else:
                _run_here(config, settings, todo, folder, console)
        except KeyboardInterrupt:
            finished = sum((_unit(folder, a, s) / RESULT).exists() for a, s in units)
            console.print(
                f"Interrupted: {finished} of {len(units)} arm runs are finished and kept in "
                f"{folder}; `selfplay study {path}{' --quick' if quick else ''} --resume "
                f"{folder}` runs the rest"
            )
            raise
    results = {(a, s): read_result(_unit(folder, a, s) / RESULT) for a, s in units}
    study = summarise(config, seeds, results, folder, quick)
    call = {
        "started": started,
        "seconds": time.perf_counter() - start,
        "arm_runs": len(todo),
        "where": f"Ray ({ray_address})" if ray_address else "this process",
    }
    study["calls"] = _earlier_calls(folder) + [call]
    study["seconds"] = {
        "wall": sum(c["seconds"] for c in study["calls"]),
        "arm_runs": sum(r["seconds"] for r in results.values()),
    }
    write_json_atomic(folder / "study.json", study)
    from selfplay.studies.render import render

    write_text_atomic(folder / "study.html", render(study, _series(config, seeds, results)))
    return folder


def _earlier_calls(folder: Path) -> list[dict[str, Any]]:
    """The calls recorded in an earlier ``study.json`` of this folder (a resumed study's
    wall time is the sum of its calls); none when there is none or it cannot be read."""
    try:
        return list(json.loads((folder / "study.json").read_text())["calls"])
    except (OSError, ValueError, KeyError, TypeError):
        return []


def read_result(path: Path) -> dict[str, Any]:
    """A unit's result.json; a StudyError naming it when it cannot be read."""
    try:
        result = read_json(path)
    except ValueError as err:
        raise StudyError(f"{err}; delete it to rerun that arm") from None
    if not (
        isinstance(result, dict)
        and isinstance(result.get("measures"), dict)
        and isinstance(result.get("seconds"), int | float)
    ):
        raise StudyError(
            f"{path}: not an arm run's result (no 'measures' or 'seconds'); delete it to rerun "
            "that arm"
        )
    return result


def summarise(
    config: StudyConfig,
    seeds: list[int],
    results: dict[tuple[str, int], dict[str, Any]],
    folder: Path,
    quick: bool,
) -> dict[str, Any]:
    """``study.json``'s content from the units' results (no I/O)."""
    kind = KINDS[config.kind]
    per_seed = {
        arm.name: {seed: results[arm.name, seed]["measures"] for seed in seeds}
        for arm in config.arms
    }
    arms = []
    for arm in config.arms:
        measures = {}
        for name in kind.MEASURES:
            values = [per_seed[arm.name][s].get(name) for s in seeds]
            defined = [v for v in values if v is not None]
            measures[name] = {
                "per_seed": dict(zip(map(str, seeds), values, strict=True)),
                "summary": seed_summary(defined).to_dict() if defined else None,
                "undefined": len(values) - len(defined),
            }
        arms.append(
            {
                "name": arm.name,
                "label": arm.label,
                "folder": str(folder / "arms" / arm.name),
                "measures": measures,
                "seconds": {str(s): results[arm.name, s]["seconds"] for s in seeds},
            }
        )
    decision = decide(config.conditions(), per_seed)
    return {
        "study": config.name,
        "claim": config.claim,
        "source": config.source,
        "kind": config.kind,
        "quick": quick,
        "seeds": seeds,
        "measures": kind.MEASURES,
        "arms": arms,
        "rule": {
            "conditions": decision["conditions"],
            "statement": "each condition holds when its 95% t interval over seeds lies wholly "
            "on the claim's side of its threshold and fails when it lies wholly on the other "
            "side; replicated when every condition holds, not replicated when any fails, "
            "inconclusive otherwise. min_detectable: the smallest distance from the threshold "
            "a two-sided t test at 5% detects with 80% power at this number of seeds and "
            "observed spread.",
        },
        "conclusion": decision["conclusion"],
        "machine": {
            "cpus": os.cpu_count(),
            "processor": _cpu_name(),
            "python": platform.python_version(),
        },
    }


def _run_here(config, settings, todo, folder: Path, console) -> None:
    for i, (arm, seed) in enumerate(todo, 1):
        console.rule(f"arm {arm}, seed {seed} ({i}/{len(todo)})")
        run_unit(config.kind, asdict(settings[arm]), arm, seed, str(folder), console)


def _run_on_ray(config, settings, todo, folder: Path, address: str, console) -> None:
    from rich.progress import Progress

    from selfplay.launch import connect

    ray = connect(address, config.cpus_per_arm)
    remote = ray.remote(num_cpus=config.cpus_per_arm, max_retries=0)(run_unit)
    pending = {
        remote.remote(config.kind, asdict(settings[a]), a, s, str(folder)): (a, s) for a, s in todo
    }
    failures = []
    try:
        with Progress(console=console) as bar:
            task = bar.add_task("arm runs on Ray", total=len(pending))
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                arm, seed = pending.pop(done[0])
                try:
                    ray.get(done[0])
                except Exception as err:  # a failed unit is reported after the others finish
                    failures.append(f"arm {arm!r} seed {seed}: {_first_line(err)}")
                bar.advance(task)
    except BaseException:  # Ctrl-C (or a lost driver): the arm runs still going are stopped
        # Otherwise they run to their end in Ray's workers while this process waits to exit.
        # Their folders lack result.json, so --resume reruns them; finished ones are kept.
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    if failures:
        raise StudyError(
            f"{len(failures)} arm run(s) failed on Ray (the others are kept for --resume): "
            + "; ".join(failures)
        )


def run_unit(
    kind: str, settings: dict[str, Any], arm: str, seed: int, folder: str, console=None
) -> str:
    """One arm at one seed: run the kind (printing to ``console`` when given), write
    ``result.json`` atomically; its path."""
    module = KINDS[kind]
    unit = _unit(Path(folder), arm, seed)
    unit.mkdir(parents=True, exist_ok=True)
    settings_ = from_dict(module.Settings, settings)
    result = module.run(settings_, seed, unit, console, shared=Path(folder) / SHARED)
    result = {"arm": arm, "seed": seed, **result}
    write_json_atomic(unit / RESULT, result)
    return str(unit / RESULT)


def _unit(folder: Path, arm: str, seed: int) -> Path:
    return folder / "arms" / arm / f"seed-{seed}"


def _folder(config: StudyConfig, path, stored: dict, quick: bool, resume) -> Path:
    """The study folder: a new one, or the one ``--resume`` names or finds (same config)."""
    root = Path(config.studies_dir)
    prefix = f"{config.name}-quick-" if quick else f"{config.name}-"
    if resume is False:
        check_writable(root, str(path), "studies_dir")
        folder = root / f"{prefix}{time.strftime('%Y%m%d-%H%M%S')}"
        n = 1
        while folder.exists():  # two studies started within one second
            n += 1
            folder = root / f"{prefix}{time.strftime('%Y%m%d-%H%M%S')}-{n}"
        try:
            folder.mkdir(parents=True)
        except OSError as err:  # what check_writable cannot see (a kernel file system, say)
            raise ConfigError(
                f"{path}: key 'studies_dir': cannot create {folder}: {err.strerror}"
            ) from None
        write_json_atomic(folder / CONFIG, stored)
        return folder
    if resume is not True:
        folder = Path(resume)
        if not (folder / CONFIG).is_file():
            raise ConfigError(f"{path}: --resume: {folder} is not a study folder (no {CONFIG})")
        check_writable(folder, str(path), "--resume")
        if read_json(folder / CONFIG) != stored:
            raise ConfigError(
                f"{path}: --resume: {folder} was run with another config or --quick setting; "
                "start a new study"
            )
        return folder
    for folder in sorted(root.glob(f"{prefix}*"), reverse=True):
        try:  # a quick study's folder matches the prefix too, but not the stored config
            if read_json(folder / CONFIG) == stored:
                return folder
        except (OSError, ValueError):
            continue
    raise ConfigError(f"{path}: --resume: no study of this config under {root}")


def _series(config: StudyConfig, seeds: list[int], results) -> list[dict[str, Any]]:
    """The logged series per arm and seed, for the page's plots."""
    return [
        {
            "name": arm.name,
            "label": arm.label,
            "units": [{"seed": s, "series": results[arm.name, s].get("series", {})} for s in seeds],
        }
        for arm in config.arms
    ]


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[-1] if text else type(err).__name__
