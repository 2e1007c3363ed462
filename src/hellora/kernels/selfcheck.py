"""The Triton backend checks itself before `auto` trusts it: once per (dtype, shape class, device).

Why: the Triton kernels are compiled the first time a user runs on a GPU, on shapes nobody has tried there. A
compile error or a wrong result on some shape would otherwise cost that user a run. So on the first call of each
(dtype, shape class, device), `auto` runs the Triton backend and the torch backend on that very batch, forward
and backward (with a fixed random output gradient), and compares the output, the input gradient and every
adapter gradient. On an exception or a mismatch beyond the dtype's tolerance it warns once, naming the shape and
the error, and the torch backend serves every later call in this process (the Triton path is not retried).

Shape class: x's feature count, the column blocks (offset, step, width) and each pair's rank: what the kernels'
masking and tiling depend on; the number of rows varies from batch to batch and is not part of it.

`HELLORA_KERNEL_SELFCHECK`: unset = check on CUDA; `0` = trust Triton unchecked; `1` = check, and also let
`auto` take the Triton path on CPU tensors when Triton's interpreter is on (`TRITON_INTERPRET=1`): how the tests
and `hellora doctor` exercise the check without a GPU.
"""

from __future__ import annotations

import logging
import os
import warnings

from typing import Callable, Sequence

import torch

from hellora.kernels.routing import Columns, ExpertRouting, LoRAPairs

log = logging.getLogger(__name__)

ENV = "HELLORA_KERNEL_SELFCHECK"
# max |triton - torch| / max |torch| allowed, per dtype: a few units of the dtype's rounding after K-long sums
TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-10, torch.bfloat16: 3e-2, torch.float16: 5e-3}

_results: dict[tuple, str] = {}  # key -> "passed" | "failed: ..."
_disabled: str | None = None  # the first failure: from then on the torch backend serves `auto`


def mode() -> str:
    """"auto" (check on CUDA), "off" or "on" (check everywhere, the interpreter included) from the environment."""
    value = os.environ.get(ENV, "")
    return {"": "auto", "0": "off", "1": "on"}.get(value, "auto")


def cpu_interpreter_allowed() -> bool:
    """Whether `auto` may take the Triton path on CPU tensors: only when the check is forced on and Triton's
    interpreter is active."""
    return mode() == "on" and os.environ.get("TRITON_INTERPRET") == "1"


def shape_key(x: torch.Tensor, blocks: Sequence[Columns], pairs: LoRAPairs) -> tuple:
    return (str(x.dtype).replace("torch.", ""), x.device.type, x.shape[1],
            tuple((b.offset, b.step, b.width) for b in blocks), tuple(int(a.shape[1]) for a, _ in pairs))


def results() -> dict[str, str]:
    """Every check so far, readable: {"bfloat16/cuda in=2048 blocks=... r=(32,)": "passed", ...}."""
    return {describe(k): v for k, v in _results.items()}


def describe(key: tuple) -> str:
    dtype, device, n_in, blocks, ranks = key
    cols = ",".join(f"{o}:{s}:{w}" for o, s, w in blocks)
    return f"{dtype}/{device} in={n_in} blocks(offset:step:width)={cols} rank={'/'.join(map(str, ranks))}"


def disabled() -> str | None:
    """The failure that turned the Triton path off in this process, or None."""
    return _disabled


def reset() -> None:
    """Forget every result (tests; a process otherwise checks each shape class once)."""
    global _disabled
    _results.clear()
    _disabled = None


def _relative_error(a: torch.Tensor | None, b: torch.Tensor | None) -> float:
    if a is None or b is None:
        return 0.0 if a is None and b is None else float("inf")
    a, b = a.double(), b.double()
    if not torch.isfinite(a).all():
        return float("inf")
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30)) if b.numel() else 0.0


def _run(apply, backend, x, lora, grad):
    xs = x.detach().clone().requires_grad_(x.requires_grad)
    ls = [t.detach().clone().requires_grad_(t.requires_grad) for t in lora]
    out = apply(xs, ls, backend)
    leaves = [t for t in (xs, *ls) if t.requires_grad]
    grads = torch.autograd.grad(out, leaves, grad, allow_unused=True) if leaves else ()
    return [out.detach(), *grads]


def _compare(apply, triton_backend, torch_backend, x, lora) -> str | None:
    """None when Triton matches torch on this batch, else what differs."""
    g = torch.Generator(device="cpu").manual_seed(0)
    with torch.no_grad():
        probe = apply(x.detach(), [t.detach() for t in lora], torch_backend)
    grad = torch.randn(probe.shape, generator=g).to(device=probe.device, dtype=probe.dtype)
    with torch.enable_grad():
        ref = _run(apply, torch_backend, x, lora, grad)
        got = _run(apply, triton_backend, x, lora, grad)
    tol = TOLERANCE.get(x.dtype, 1e-4)
    names = ["output"] + (["dx"] if x.requires_grad else []) + [f"d{n}{i}" for i in range(len(lora) // 2)
                                                               for n, t in zip("AB", lora[2 * i: 2 * i + 2])
                                                               if t.requires_grad]
    for name, a, b in zip(names, got, ref):
        err = _relative_error(a, b)
        if not err <= tol:
            return f"{name} differs from the torch backend by {err:.3g} (relative; {x.dtype} allows {tol:g})"
    return None


def triton_passes(key: tuple, apply: Callable[[torch.Tensor, list[torch.Tensor], type], torch.Tensor],
                  triton_backend: type, torch_backend: type, x: torch.Tensor, lora: list[torch.Tensor],
                  routing: ExpertRouting) -> bool:
    """Whether the Triton backend may serve `key`: its first call compares against torch (see the module doc).

    `apply(x, lora, backend)` runs the op; `routing.adapter_rows` (a probe the torch backend counts) is restored.
    """
    global _disabled
    if _disabled is not None:
        return False
    if key in _results:
        return _results[key] == "passed"
    rows = routing.adapter_rows
    try:
        problem = _compare(apply, triton_backend, torch_backend, x, lora)
    except Exception as err:  # a compile error, an out-of-resources launch, ...
        problem = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
    finally:
        routing.adapter_rows = rows
    if problem is None:
        _results[key] = "passed"
        log.info("expert kernel self-check passed for %s", describe(key))
        return True
    _results[key] = f"failed: {problem}"
    _disabled = f"{describe(key)}: {problem}"
    warnings.warn(f"hellora: the Triton expert kernel failed its self-check on {describe(key)} ({problem}); "
                  f"using the torch backend from now on (set HELLORA_EXPERT_KERNEL=torch to skip the check)",
                  RuntimeWarning, stacklevel=3)
    return False
