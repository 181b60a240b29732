"""Native bf16 is read from the CPU's flags; without them the answer is fp32, with a reason."""

from selfplay.precision import cpu_flags, native_bf16

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
flags\t\t: fpu sse2 avx2 avx512f {extra}
bogomips\t: 4000.00
"""


def test_flags_are_read_from_cpuinfo():
    assert cpu_flags(CPUINFO.format(extra="amx_bf16 amx_tile")) >= {"avx512f", "amx_bf16"}
    assert cpu_flags("no flags line here") == set()


def test_amx_or_avx512_bf16_is_native():
    yes, why = native_bf16(cpu_flags(CPUINFO.format(extra="avx512_bf16")))
    assert yes and "avx512_bf16" in why
    yes, why = native_bf16({"amx_bf16", "avx512_bf16"})
    assert yes and why.index("amx_bf16") < why.index("avx512_bf16")


def test_without_them_fp32_with_one_line_why():
    yes, why = native_bf16(cpu_flags(CPUINFO.format(extra="")))
    assert not yes and "fp32" in why and "\n" not in why


def _grpo(tmp_path, text: str):
    from selfplay.config import load_config
    from selfplay.config.grpo import grpo_config
    from selfplay.config.run import RunConfig

    path = tmp_path / "run.yaml"
    path.write_text("envs: {arithmetic: {}}\n" + text)
    return grpo_config(load_config(path, RunConfig), tmp_path / "out", str(path))


def test_run_precision_sets_trl_bf16(tmp_path):
    import pytest

    from selfplay.errors import ConfigError

    assert _grpo(tmp_path, "").bf16 is False  # fp32 by default
    assert _grpo(tmp_path, "precision: bf16\n").bf16 is True
    assert _grpo(tmp_path, "precision: auto\n").bf16 is native_bf16()[0]
    assert _grpo(tmp_path, "grpo: {bf16: true}\n").bf16 is True  # older configs still work
    with pytest.raises(ConfigError, match="keys 'precision' .* and 'grpo.bf16' .* both set"):
        _grpo(tmp_path, "precision: bf16\ngrpo: {bf16: false}\n")
    with pytest.raises(ConfigError, match="precision must be one of fp32, bf16, auto, got 'fp16'"):
        _grpo(tmp_path, "precision: fp16\n")


def test_uses_bf16_auto_says_why():
    from rich.console import Console

    from selfplay.precision import uses_bf16

    console = Console(record=True, width=200)
    assert uses_bf16("auto", console, cuda=False) is native_bf16()[0]
    assert console.export_text().strip() == native_bf16()[1]
    assert uses_bf16("fp32", console, cuda=False) is False
    assert uses_bf16("bf16", console, cuda=False) is True
