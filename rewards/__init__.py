"""Reward functions in TRL's signature, built from environments and judges (stdlib only)."""
