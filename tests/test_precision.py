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
