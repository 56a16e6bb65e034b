"""An ISA cap in the environment (an AVX-512 machine emulating AVX2) takes bf16 away."""

import pytest

from handlers import runtime


@pytest.mark.parametrize("cap", ["AVX2", "avx2", "AVX512_CORE"])
def test_a_cap_below_bf16_means_no_native_bf16(monkeypatch, cap):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert runtime.isa_cap() == cap.upper()
    assert runtime.cpu_has_native_bf16() is False


def test_without_a_cap_the_cpu_flags_decide(monkeypatch, tmp_path):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags : fpu avx2 avx512f avx512_bf16\n")
    real_path = runtime.Path
    monkeypatch.setattr(runtime, "Path", lambda p: real_path(cpuinfo) if p == "/proc/cpuinfo"
                        else real_path(p))
    assert runtime.isa_cap() is None and runtime.cpu_has_native_bf16() is True
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")  # a cap above bf16
    assert runtime.cpu_has_native_bf16() is True


def test_under_a_cap_the_build_tries_only_the_engines_the_cap_reaches(monkeypatch):
    from benchmarks import engines as engines_benchmark
    from modelzoo import engine_choice

    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert {engine for engine, _ in engine_choice.candidates("cpu")} == {"torchscript"}
    assert "reads the CPU's flags" in engines_benchmark.unsupported("openvino", "fp32", "cpu")
    assert engines_benchmark.unsupported("torchscript", "int8", "cpu") is None
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert {engine for engine, _ in engine_choice.candidates("cpu")} >= {"openvino",
                                                                        "onnxruntime"}
