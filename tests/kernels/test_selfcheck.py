"""`auto`'s first-call check of the Triton backend, run on CPU through Triton's interpreter
(HELLORA_KERNEL_SELFCHECK=1), passing and with forced failures: a kernel that raises (a compile error) and
kernels that return wrong values, forward or backward."""

import warnings

import pytest
import torch

from hellora.kernels import selfcheck
from hellora.kernels.subset_lora import TorchSubsetLoRA, grouped_linear_subset_lora
from hellora.kernels.triton_subset_lora import TritonSubsetLoRA
from tests.conftest import TRITON_ON_CPU
from tests.kernels.test_subset_lora import CASES, _case

pytestmark = pytest.mark.skipif(not TRITON_ON_CPU, reason="needs triton (its CPU interpreter)")


@pytest.fixture(autouse=True)
def _checked_auto(monkeypatch):
    monkeypatch.setenv("HELLORA_EXPERT_KERNEL", "auto")
    monkeypatch.setenv("HELLORA_KERNEL_SELFCHECK", "1")
    selfcheck.reset()
    yield
    selfcheck.reset()


def _call(case="gate-up"):
    spec = dict(CASES[case])
    routing, x, weight, bias, pairs = _case(**spec)
    x = x.requires_grad_()
    pairs = [(a.requires_grad_(), b.requires_grad_()) for a, b in pairs]
    routing.adapter_rows = 0
    out = grouped_linear_subset_lora(x, weight, routing, bias, spec["transposed"], spec["hot"],
                                     torch.tensor(spec["hot"]), spec["blocks"], pairs, 1.5)
    rows = routing.adapter_rows  # rows the torch backend counted (Triton counts none)
    ref = grouped_linear_subset_lora(x, weight, routing, bias, spec["transposed"], spec["hot"],
                                     torch.tensor(spec["hot"]), spec["blocks"], pairs, 1.5, backend=TorchSubsetLoRA)
    return out, ref, rows


def test_check_passes_and_triton_serves():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, ref, rows = _call()
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert rows == 0  # Triton served the call (the check's own torch run is not counted)
    assert list(selfcheck.results().values()) == ["passed"]
    assert "float32/cpu in=40" in next(iter(selfcheck.results()))
    _call()
    assert len(selfcheck.results()) == 1  # checked once per shape class
    _call("interleaved-transposed-bias")
    assert len(selfcheck.results()) == 2 and selfcheck.disabled() is None


def _fails_with(monkeypatch, name, replacement, match):
    monkeypatch.setattr(TritonSubsetLoRA, name, staticmethod(replacement))
    with pytest.warns(RuntimeWarning, match=match) as caught:
        out, ref, rows = _call()
    assert len(caught) == 1 and rows > 0
    assert "in=40" in str(caught[0].message)  # names the shape
    assert torch.equal(out, ref)  # the torch backend served the call
    assert selfcheck.disabled() is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once: later calls, any shape, fall back silently
        out2, ref2, _ = _call("interleaved-transposed-bias")
    assert torch.equal(out2, ref2)
    assert all(v.startswith("failed") for v in selfcheck.results().values())


def test_compile_error_falls_back_to_torch(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("CompilationError: at 12:4: out of resources")

    _fails_with(monkeypatch, "forward_", broken, "CompilationError")


def test_wrong_forward_values_fall_back_to_torch(monkeypatch):
    original = TritonSubsetLoRA.forward_

    def wrong(out, *args):
        kept = original(out, *args)
        out.add_(1e-2)
        return kept

    _fails_with(monkeypatch, "forward_", wrong, "output differs")


def test_wrong_gradients_fall_back_to_torch(monkeypatch):
    original = TritonSubsetLoRA.backward_

    def wrong(*args):
        grads = original(*args)
        return [(a * 1.5 if a is not None else None, b) for a, b in grads]

    _fails_with(monkeypatch, "backward_", wrong, r"dA0 differs")


def test_explicit_triton_choice_is_not_second_guessed(monkeypatch):
    monkeypatch.setenv("HELLORA_EXPERT_KERNEL", "triton")
    _call()
    assert selfcheck.results() == {}


def test_check_off_on_cpu_means_the_torch_backend(monkeypatch):
    monkeypatch.setenv("HELLORA_KERNEL_SELFCHECK", "0")
    out, ref, rows = _call()
    assert rows > 0 and selfcheck.results() == {}
