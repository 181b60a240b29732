"""Configuration: strict YAML into typed dataclasses, the run config, TRL's GRPOConfig.

- ``strict``: loading YAML into dataclasses strictly (unknown keys, wrong types, duplicate
  keys and bad values are ``ConfigError``s naming the file and the dotted key);
- ``run``: the run config's schema (``RunConfig`` and its sections);
- ``play``: the self-play section (``SelfPlayConfig``);
- ``grpo``: conversion to TRL's ``GRPOConfig``, with the values TRL would take unchecked;
- ``load``: the loaders every command shares (a run config from YAML or a run folder, its
  environments, its ladders, its model).

The strict loader's names are re-exported here: ``from selfplay.config import load_config``.
"""

from selfplay.config.strict import (
    ADDED_LATER,
    ConfigError,
    config_hash,
    convert,
    from_dict,
    load_config,
    read_yaml,
    to_dict,
)

__all__ = [
    "ADDED_LATER",
    "ConfigError",
    "config_hash",
    "convert",
    "from_dict",
    "load_config",
    "read_yaml",
    "to_dict",
]
