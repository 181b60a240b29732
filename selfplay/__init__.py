"""selfplay: self-play curricula and GRPO for studying how reasoning emerges in language models."""

__version__ = "0.1.0"
