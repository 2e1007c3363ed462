"""Independent reference math for the adapter variants: explicit per-(token, slot) loops over dense per-expert
weights, written from the formulas, sharing no code with `hellora.adapters`."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def base_weight(experts, layout, e: int, part: str) -> torch.Tensor:
    """Expert e's (out, in) weight of `part`, sliced out of the fused parameters by hand."""
    i = layout.intermediate_size
    if part == "down":
        w = experts.down_proj[e]
        return w.t() if layout.transposed else w
    gu = experts.gate_up_proj[e]
    gu = gu.t() if layout.transposed else gu  # (2I, H)
    if layout.interleaved:
        return gu[0::2] if part == "gate" else gu[1::2]
    return gu[:i] if part == "gate" else gu[i:]


def base_bias(experts, layout, e: int, part: str):
    if not layout.has_bias:
        return None
    if part == "down":
        return experts.down_proj_bias[e]
    b = experts.gate_up_proj_bias[e]
    if layout.interleaved:
        return b[0::2] if part == "gate" else b[1::2]
    i = layout.intermediate_size
    return b[:i] if part == "gate" else b[i:]


def loop_experts(experts, layout, x, top_k_index, top_k_weights, project):
    """out[t] = sum_j w[t, j] * expert_{idx[t, j]}(x[t]) where each projection is `project(e, part, v)` (no bias)."""
    out = torch.zeros_like(x)
    for t in range(x.shape[0]):
        for j in range(top_k_index.shape[1]):
            e = int(top_k_index[t, j])
            parts = {}
            for part in ("gate", "up"):
                v = project(e, part, x[t])
                b = base_bias(experts, layout, e, part)
                parts[part] = v + b if b is not None else v
            gate, up = parts["gate"], parts["up"]
            if layout.interleaved:  # gpt-oss gating
                gate = gate.clamp(max=experts.limit)
                up = up.clamp(min=-experts.limit, max=experts.limit)
                h = (up + 1) * (gate * torch.sigmoid(gate * experts.alpha))
            else:
                h = F.silu(gate) * up
            y = project(e, "down", h)
            b = base_bias(experts, layout, e, "down")
            y = y + b if b is not None else y
            out[t] = out[t] + top_k_weights[t, j] * y
    return out


def dora_weight(w, a, b, m, scale):
    """m * (W + sBA) / ||W + sBA||_row with the norm a constant (DoRA Sec. 4.3)."""
    v = w + scale * b @ a
    return (m / v.detach().norm(dim=1)).unsqueeze(1) * v


def mixture(v, a, b, router, scale):
    """s * sum_i softmax(R v)_i B_i A_i v for one vector v; a (N, r, in), b (N, out, r), router (N, in)."""
    g = torch.softmax(router @ v, dim=-1)
    return scale * sum(g[i] * (b[i] @ (a[i] @ v)) for i in range(a.shape[0]))
