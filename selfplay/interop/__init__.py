"""Doors to the tools researchers already use: verifiers environments both ways, TRL reward
functions and environments, and Hugging Face datasets. Each module imports its tool lazily."""
