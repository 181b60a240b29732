"""The base-model organism: a small transformer the project pretrains itself."""
