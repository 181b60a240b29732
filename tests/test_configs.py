"""Every file in configs/ loads into its dataclass (an organism recipe or a run config)."""

from pathlib import Path

import pytest
import yaml

from selfplay.config import load_config, to_dict
from selfplay.config.grpo import grpo_config, phase_args
from selfplay.config.load import load_envs
from selfplay.config.run import RunConfig
from selfplay.organism.pretrain import OrganismConfig
from selfplay.runs import check_selfplay

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))


def test_there_are_configs():
    assert {p.name for p in CONFIGS} >= {"organism.yaml", "quickstart.yaml", "control.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads(path, tmp_path):
    """Each recipe loads, every key it writes lands in the dataclass unchanged, TRL takes its
    ``grpo:`` section with those values, and self-play recipes pass self-play's own checks."""
    raw = yaml.safe_load(path.read_text())
    if "corpus" in raw:
        config = load_config(path, OrganismConfig)
        assert _written(raw, to_dict(config)) == [], "keys that did not load as written"
        return
    config = load_config(path, RunConfig)
    assert _written(raw, to_dict(config)) == [], "keys that did not load as written"
    args = grpo_config(config, tmp_path, str(path))  # TRL accepts the grpo: section
    for key, value in raw.get("grpo", {}).items():
        assert getattr(args, key) == value, f"grpo.{key}"
    if config.selfplay.enabled:  # and both phases' options, and self-play's own checks
        check_selfplay(config, load_envs(config, str(path)), str(path))
        phase = phase_args(config, tmp_path, str(path), "challenger")
        assert phase.num_generations == config.selfplay.proposals_per_prompt
    if config.model == "organism":
        organism = Path(__file__).parents[1] / config.organism_config
        assert load_config(organism, OrganismConfig).name


def _written(raw, loaded, key: str = "") -> list[str]:
    """Dotted keys of ``raw`` (the YAML as written) whose value ``loaded`` does not hold."""
    if isinstance(raw, dict):
        if not isinstance(loaded, dict):
            return [key or "(root)"]
        return [
            k
            for name, value in raw.items()
            for k in _written(value, loaded.get(name), f"{key}{name}.")
        ]
    if (
        isinstance(raw, float | int)
        and not isinstance(raw, bool)
        and isinstance(loaded, float | int)
    ):
        return [] if float(raw) == float(loaded) else [key.rstrip(".")]
    return [] if raw == loaded else [key.rstrip(".")]


def test_control_recipe_is_a_control():
    config = load_config(Path(__file__).parents[1] / "configs/control.yaml", RunConfig)
    assert config.curriculum.mode == "fixed" and config.judge == "majority"


def test_calibration_recipe_weights_calibration_on_a_confident_organism():
    root = Path(__file__).parents[1]
    config = load_config(root / "configs/calibration_organism.yaml", RunConfig)
    assert config.rewards.weights["calibration"] > 0
    organism = load_config(root / config.organism_config, OrganismConfig)
    assert organism.corpus.confidence_rate > 0
