"""`hellora doctor`: the report's parts, the Triton self-check passing in the interpreter and failing when forced."""

import json

import pytest

from hellora.bench.doctor import doctor, expert_paths, format_doctor
from hellora.cli import main
from hellora.kernels import selfcheck
from tests.conftest import TRITON_ON_CPU


def test_doctor_on_cpu_names_the_path_and_why(monkeypatch):
    monkeypatch.delenv("HELLORA_KERNEL_SELFCHECK", raising=False)
    monkeypatch.delenv("HELLORA_EXPERT_KERNEL", raising=False)
    report = doctor(bench=False)
    assert report["versions"]["torch"] and report["device"]["type"] in ("cpu", "cuda")
    if report["device"]["type"] == "cpu":
        assert report["expert_path"]["hellora"] == "torch-loop" and "no CUDA device" in report["expert_path"]["why"]
        assert report["selfcheck"]["triton"].startswith("not applicable")
    assert report["selfcheck"]["torch_vs_float64_loop"]["ok"]
    assert "expert path: hellora ->" in format_doctor(report)


def test_doctor_reports_the_loop_when_asked_for(monkeypatch):
    monkeypatch.setenv("HELLORA_EXPERT_KERNEL", "loop")
    paths = expert_paths()
    assert paths["lora"] == "torch-loop" and "HELLORA_EXPERT_KERNEL=loop" in paths["why"]


@pytest.mark.skipif(not TRITON_ON_CPU, reason="needs triton (its CPU interpreter)")
def test_doctor_runs_the_selfcheck_in_the_interpreter_and_reports_a_forced_failure(monkeypatch):
    from hellora.kernels.triton_subset_lora import TritonSubsetLoRA

    monkeypatch.setenv("HELLORA_KERNEL_SELFCHECK", "1")
    monkeypatch.delenv("HELLORA_EXPERT_KERNEL", raising=False)
    report = doctor(bench=False)
    assert report["expert_path"]["hellora"] == "triton"
    assert report["selfcheck"]["triton"] == "passed" and "float32/cpu" in report["selfcheck"]["triton_shape"]

    def broken(*args, **kwargs):
        raise RuntimeError("CompilationError: forced")

    monkeypatch.setattr(TritonSubsetLoRA, "forward_", staticmethod(broken))
    failed = doctor(bench=False)["selfcheck"]["triton"]
    assert failed.startswith("failed: RuntimeError: CompilationError: forced")
    assert selfcheck.disabled() is None  # the doctor's probe does not turn the path off for the real model


def test_doctor_cli_json(capsys):
    assert main(["doctor", "--no-bench", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"versions", "device", "expert_path", "selfcheck"} <= set(report)
