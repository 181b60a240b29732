"""Every file in configs/ loads into its dataclass (an organism recipe or a run config)."""

from pathlib import Path

import pytest
import yaml

from selfplay.config import load_config
from selfplay.organism.pretrain import OrganismConfig
from selfplay.train import RunConfig, grpo_config

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))


def test_there_are_configs():
    assert {p.name for p in CONFIGS} >= {"organism.yaml", "quickstart.yaml", "control.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads(path, tmp_path):
    raw = yaml.safe_load(path.read_text())
    if "corpus" in raw:
        load_config(path, OrganismConfig)
        return
    config = load_config(path, RunConfig)
    grpo_config(config, tmp_path, str(path))  # TRL accepts the grpo: section
    if config.selfplay.enabled:  # and both phases' options, and self-play's own checks
        from selfplay import play
        from selfplay.train import load_envs

        play.check(config, load_envs(config, str(path)), str(path))
        play.phase_args(config, tmp_path, str(path), "challenger")
    if config.model == "organism":
        organism = Path(__file__).parents[1] / config.organism_config
        load_config(organism, OrganismConfig)


def test_control_recipe_is_a_control():
    config = load_config(Path(__file__).parents[1] / "configs/control.yaml", RunConfig)
    assert config.curriculum.mode == "fixed" and config.judge == "majority"


def test_calibration_recipe_weights_calibration_on_a_confident_organism():
    root = Path(__file__).parents[1]
    config = load_config(root / "configs/calibration_organism.yaml", RunConfig)
    assert config.rewards.weights["calibration"] > 0
    organism = load_config(root / config.organism_config, OrganismConfig)
    assert organism.corpus.confidence_rate > 0
