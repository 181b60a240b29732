"""Whether this machine computes in bf16 natively, read from the CPU's flags.

bf16 pays on a CPU only where the instructions exist: AVX512-BF16 (``avx512_bf16``) or AMX
(``amx_bf16``). Elsewhere torch emulates it, slower than fp32, so the answer decides between
bf16 autocast and plain fp32. Master weights and the optimizer stay fp32 either way.
"""

from __future__ import annotations

from pathlib import Path

PRECISIONS = ("fp32", "bf16", "auto")
"""``precision`` values: fp32, bf16 autocast (weights and optimizer fp32), or bf16 where the
hardware has it natively (``uses_bf16``)."""

BF16_FLAGS = ("amx_bf16", "avx512_bf16")
"""CPU flags (``/proc/cpuinfo``) of native bf16 arithmetic, the faster first."""


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``); empty where they cannot be read."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def native_bf16(flags: set[str] | None = None) -> tuple[bool, str]:
    """``(yes, why)``: whether the CPU has native bf16, and the one line that says so."""
    flags = cpu_flags() if flags is None else flags
    found = [f for f in BF16_FLAGS if f in flags]
    if found:
        return True, f"bf16: native on this CPU ({', '.join(found)})"
    return False, "bf16: no AVX512-BF16 or AMX on this CPU, so fp32 (emulated bf16 is slower)"


def uses_bf16(precision: str, console=None, *, cuda: bool | None = None) -> bool:
    """Whether ``precision`` means bf16 here; "auto" asks the hardware the work runs on (a
    CUDA GPU's bf16 support when ``cuda``, by default when one is present; else the CPU's
    flags) and prints why in one line to ``console``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision == "bf16"
    import torch

    if cuda is None:
        cuda = torch.cuda.is_available()
    if cuda:
        native = torch.cuda.is_bf16_supported()
        why = f"bf16: {'supported' if native else 'not supported'} on this GPU"
    else:
        native, why = native_bf16()
    if console is not None:
        console.print(why)
    return native
