"""The loaders every command shares: a run config (from YAML or a run folder), its
environments with their ladders checked, the levels of the mix, the model and the Judge's."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from selfplay.config.run import EnvMix, RunConfig
from selfplay.config.strict import ConfigError, from_dict, load_config
from selfplay.curriculum import Curriculum, ProgramChallenger


def load_run_config(path: str | Path) -> RunConfig:
    """A run config from a YAML file, or from a run folder (its stored ``config.json``)."""
    path = Path(path)
    if path.is_dir():
        stored = path / "config.json"
        if not stored.is_file():
            raise ConfigError(f"{path}: a folder but not a run (no config.json)")
        try:
            data = stored_config(path)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        return from_dict(RunConfig, data, source=str(stored))
    return load_config(path, RunConfig)


def load_envs(config: RunConfig, source: str, equip=None) -> dict:
    """The mix's environments; an unknown name, a bad option or a level (``levels``,
    ``start_level``) that is not the environment's is a ConfigError naming the key.

    ``equip(env)`` gives the environments that run programs their executor: by default this
    process's shared sandbox (``selfplay.sandbox.equip``).
    """
    from envs import load_env

    if equip is None:
        from selfplay.sandbox import equip

    envs = {}
    for name, mix in config.envs.items():
        try:
            env = load_env(name, **mix.options)
        except (KeyError, ValueError, ImportError) as err:
            raise ConfigError(f"{source}: key 'envs.{name}': {err}") from None
        _check_ladder(name, mix, list(env.levels), source)
        envs[name] = equip(env)
    task_pool(config, envs, source)
    return envs


def task_pool(config: RunConfig, envs: dict, source: str = "") -> list:
    """The tasks of the config's fixed ``tasks`` list, rebuilt from their ids (empty when
    the curriculum sets the tasks); a level the environment does not have is a ConfigError
    naming the entry."""
    from selfplay.config.run import parse_task_id

    pool = []
    for i, task_id in enumerate(config.tasks):
        env, seed, level, index = parse_task_id(task_id, f"tasks[{i}]")
        try:
            pool.append(envs[env].task(seed, index, level))
        except ValueError as err:
            raise ConfigError(f"{source}: key 'tasks[{i}]': {task_id!r}: {err}") from None
    return pool


def _check_ladder(name: str, mix: EnvMix, levels: list[int], source: str) -> None:
    """A ConfigError for a ladder the environment cannot set tasks on, found now rather than
    when the curriculum first reaches the bad level (hours into a run)."""
    ladder = mix.levels if mix.levels is not None else levels
    for level in ladder:
        if level not in levels:
            raise ConfigError(
                f"{source}: key 'envs.{name}.levels': level {level} is not one of "
                f"{name}'s levels {levels}"
            )
    if ladder != sorted(ladder, key=levels.index):
        # The curriculum moves one rung up the ladder when the solver does well.
        raise ConfigError(
            f"{source}: key 'envs.{name}.levels': {ladder} must go from easiest to hardest, "
            f"in the order of {name}'s levels {levels}"
        )
    if mix.start_level is not None and mix.start_level not in ladder:
        raise ConfigError(
            f"{source}: key 'envs.{name}.start_level': {mix.start_level} is not on the "
            f"ladder {ladder}"
        )


def mix_levels(config: RunConfig, envs: dict) -> dict[str, list[int]]:
    """Each environment's levels in the mix: its ``levels`` ladder, or all the env has."""
    return {
        n: m.levels if m.levels is not None else list(envs[n].levels)
        for n, m in config.envs.items()
    }


def resolve_model(config: RunConfig, console) -> str:
    """The model path: the organism (trained or reused) or the configured folder or name."""
    if config.model != "organism":
        return config.model
    from selfplay.organism.pretrain import pretrain

    return str(pretrain(config.organism_config, root=config.models_dir, console=console))


def resolve_judge_model(config: RunConfig, model_path: str, console) -> str:
    """The model Judge's folder or name (the verifier organism trained or reused, a folder, or
    "policy"); empty when the run has no model judge. Its config is checked to load."""
    if config.judge != "model":
        return ""
    spec = config.model_judge
    if spec.model == "policy":
        return "policy"
    if spec.model != "organism":
        from selfplay.models import load_model_config

        load_model_config(spec.model)
        return spec.model
    from selfplay.organism.pretrain import pretrain

    return str(pretrain(spec.organism_config, root=config.models_dir, console=console))


def build_challenger(config: RunConfig, envs: dict) -> ProgramChallenger:
    """A ProgramChallenger over the mix, with a fresh curriculum at the start levels."""
    ladders = mix_levels(config, envs)
    starts = {
        n: m.start_level if m.start_level is not None else ladders[n][0]
        for n, m in config.envs.items()
    }
    pool = task_pool(config, envs)
    # A fixed task list leaves the curriculum nothing to set: it holds its start levels.
    settings = replace(config.curriculum, mode="fixed") if pool else config.curriculum
    curriculum = Curriculum(settings, ladders, starts)
    weights = {n: m.weight for n, m in config.envs.items()}
    return ProgramChallenger(envs, weights, curriculum, seed=config.seed, pool=pool or None)


def stored_config(run_dir: Path) -> dict:
    """The plain config a run stored in its ``config.json``; a ValueError naming the file when
    it is missing, unreadable or not a JSON mapping (a disk or a copy can damage it)."""
    path = run_dir / "config.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path} is missing") from None
    except OSError as err:
        raise ValueError(f"{path} cannot be read: {err.strerror}") from None
    except ValueError as err:  # JSONDecodeError or UnicodeDecodeError
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not valid JSON: not a mapping but a {type(data).__name__}")
    return data
