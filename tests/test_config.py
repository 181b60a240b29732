"""Strict config loading: unknown keys, wrong types and missing files name the file and key."""

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from selfplay.config import config_hash, from_dict, load_config
from selfplay.errors import ConfigError
from selfplay.organism.pretrain import OrganismConfig


@dataclass
class Inner:
    rate: float = 0.5
    """A rate."""
    names: list[str] = field(default_factory=list)
    """Some names."""


@dataclass
class Outer:
    steps: int
    """Required."""
    inner: Inner = field(default_factory=Inner)
    """Nested."""
    label: str | None = None
    """Optional."""


def test_valid_nested_config_loads():
    config = from_dict(Outer, {"steps": 3, "inner": {"rate": 1, "names": ["a"]}, "label": None})
    assert config == Outer(steps=3, inner=Inner(rate=1.0, names=["a"]), label=None)
    assert isinstance(config.inner.rate, float)


@pytest.mark.parametrize(
    "raw,message",
    [
        ({"steps": 3, "stpes": 4}, "unknown key 'stpes'"),
        ({"steps": 3, "inner": {"rat": 1}}, "unknown key 'inner.rat'"),
        ({"steps": "3"}, "key 'steps': expected int, got str"),
        ({"steps": True}, "key 'steps': expected int, got bool"),
        ({"steps": 3, "inner": {"rate": "high"}}, "key 'inner.rate': expected float"),
        ({"steps": 3, "inner": {"names": ["a", 2]}}, r"key 'inner.names\[1\]': expected str"),
        ({"steps": 3, "inner": [1]}, "key 'inner': expected a mapping"),
        ({}, "missing required key 'steps'"),
    ],
)
def test_bad_config_names_the_key(raw, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(Outer, raw, source="run.yaml")
    with pytest.raises(ConfigError, match="^run.yaml: "):
        from_dict(Outer, raw, source="run.yaml")


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml", Outer)
    broken = tmp_path / "broken.yaml"
    broken.write_text("steps: [1,\n")
    with pytest.raises(ConfigError, match="broken.yaml: line 2, column 1: not valid YAML: "):
        load_config(broken, Outer)
    broken.write_text("steps: 1\ninner: {rate: 0.5, rate: 0.7}\n")
    with pytest.raises(
        ConfigError, match="line 2, column 20: not valid YAML: duplicate key 'rate'"
    ):
        load_config(broken, Outer)
    broken.write_bytes(b"steps: 1\n\xff\xd8\xff\xe0")
    with pytest.raises(ConfigError, match=r"broken.yaml: not a text file \(byte 0xff at offset 9 "):
        load_config(broken, Outer)
    broken.write_bytes("steps: 4\n".encode("utf-16"))  # with a byte order mark: fine
    assert load_config(broken, Outer).steps == 4
    with pytest.raises(ConfigError, match="a folder, not a config file"):
        load_config(tmp_path, Outer)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_floats_are_refused(value):
    with pytest.raises(ConfigError, match="key 'inner.rate': expected a finite number"):
        from_dict(Outer, {"steps": 3, "inner": {"rate": value}}, source="run.yaml")


def test_organism_config_validation_names_the_key(tmp_path):
    path = tmp_path / "o.yaml"
    path.write_text("corpus:\n  envs:\n    arithmetic: {levels: [99]}\n")
    with pytest.raises(ConfigError, match=r"o.yaml: corpus.envs.arithmetic: level 99"):
        load_config(path, OrganismConfig)
    path.write_text("corpus:\n  envs:\n    nosuch: {levels: [1]}\n")
    with pytest.raises(ConfigError, match="corpus.envs.nosuch: unknown environment 'nosuch'"):
        load_config(path, OrganismConfig)
    path.write_text("corpus:\n  clarify_rate: 2\n  envs:\n    arithmetic: {levels: [1]}\n")
    with pytest.raises(ConfigError, match=r"corpus.clarify_rate must be in \[0, 1\]"):
        load_config(path, OrganismConfig)


def test_config_hash_tracks_content():
    a = from_dict(Outer, {"steps": 3})
    assert config_hash(a) == config_hash(from_dict(Outer, {"steps": 3}))
    assert config_hash(a) != config_hash(from_dict(Outer, {"steps": 4}))


def test_a_field_added_later_leaves_the_hash_alone_at_its_default():
    import dataclasses

    from selfplay.config import ADDED_LATER

    @dataclasses.dataclass
    class Before:
        steps: int = 3

    @dataclasses.dataclass
    class After:
        steps: int = 3
        rate: float = dataclasses.field(default=0.0, metadata={ADDED_LATER: True})

    assert config_hash(After()) == config_hash(Before())
    assert config_hash(After(rate=0.1)) != config_hash(Before())
    # At fp32 the default organism keeps the folder it was trained into before
    # challenger_rate and train.precision existed; issue 18 set precision: auto on purpose.
    organism = load_config(Path(__file__).parents[1] / "configs/organism.yaml", OrganismConfig)
    assert organism.corpus.challenger_rate == 0.0
    assert organism.train.precision == "auto"
    assert config_hash(organism) == "bd6e69ce54c1"
    organism.train.precision = "fp32"
    assert config_hash(organism) == "29c24add116b"
