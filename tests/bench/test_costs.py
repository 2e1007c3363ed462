"""Measured step costs: the grouped_mm FLOP formula, saved-for-backward bytes, state bytes, and the bench's
measured expert-adapter FLOPs against `hellora flops` for the same routing."""

import pytest
import torch

from hellora.bench.costs import _flop_mode, grouped_mm_flops, measure_step_costs
from hellora.bench.throughput import BenchConfig, run_bench
from hellora.kernels.grouped_lora import _grouped_mm
from tests.bench.test_bench import TOY


@pytest.mark.skipif(_grouped_mm is None, reason="this torch has no grouped_mm")
def test_grouped_mm_formula_equals_the_per_group_matmuls():
    ends = torch.tensor([3, 3, 9, 16], dtype=torch.int32)
    x, w = torch.randn(16, 8), torch.randn(4, 8, 12)
    with _flop_mode() as grouped:
        _grouped_mm(x, w, offs=ends)
        _grouped_mm(x.t(), torch.randn(16, 4), offs=ends)  # 2-D x 2-D: offsets split the 16 rows
    with _flop_mode() as loop:
        for e, (lo, hi) in enumerate(zip([0, 3, 3, 9], [3, 3, 9, 16])):
            if hi > lo:
                x[lo:hi] @ w[e]
                x[lo:hi].t() @ torch.randn(hi - lo, 4)
    assert grouped.get_total_flops() == loop.get_total_flops() == 2 * 16 * 8 * 12 + 2 * 8 * 16 * 4
    assert grouped_mm_flops((5, 8), (2, 8, 3)) == 2 * 5 * 8 * 3


def test_saved_and_state_bytes_of_a_known_step():
    lin = torch.nn.Linear(16, 4, bias=False)
    x = torch.randn(10, 16)
    opt = torch.optim.AdamW(lin.parameters())
    costs = measure_step_costs(lin, lambda: torch.relu(lin(x)).sum(), opt)
    # the input x (10x16) and relu's output (10x4) are kept; the weight is the model's own and not counted
    assert costs["saved_for_backward_bytes"] == 4 * (10 * 16 + 10 * 4)
    assert costs["forward_flops"] == 2 * 10 * 16 * 4 and costs["backward_flops"] == 2 * 10 * 16 * 4  # dW only
    assert costs["param_bytes"] == costs["grad_bytes"] == 4 * 64
    assert costs["optimizer_state_bytes"] >= 2 * 4 * 64  # two moments (+ the step count)


@pytest.mark.slow
def test_bench_measures_costs_and_agrees_with_hellora_flops():
    result = run_bench(BenchConfig(layers=2, batch=2, seq=32, dtype="float32", warmup=0, steps=1, overrides=TOY,
                                   setups=("frozen", "hellora", "lora", "peft-attn")), progress=False)
    rows = result["rows"]
    for name, row in rows.items():
        costs = row["costs"]
        assert costs["step_flops"] == costs["forward_flops"] + costs["backward_flops"] > 0, name
        assert costs["saved_for_backward_bytes"] > 0 and row["flop_floor"] > 0, name
        assert row["peak_gib"] is None  # CPU reports no peak
    assert rows["frozen"]["costs"]["optimizer_state_bytes"] == 0
    assert rows["hellora"]["costs"]["optimizer_state_bytes"] < rows["lora"]["costs"]["optimizer_state_bytes"]
    assert rows["hellora"]["flop_ratio"] < rows["lora"]["flop_ratio"]
    for name in ("hellora", "lora"):
        flops = rows[name]["adapter_flops"]
        assert flops["analytic_experts_per_token"] > 0
        assert abs(flops["experts_measured_over_analytic"] - 1) < 0.02, name


def test_interleaved_bench_times_every_setup_round_robin():
    result = run_bench(BenchConfig(layers=1, batch=1, seq=16, dtype="float32", warmup=1, steps=2, overrides=TOY,
                                   setups=("frozen", "hellora", "lora@loop", "lora"), interleave=True),
                       progress=False)
    rows = result["rows"]
    assert list(rows) == ["frozen", "hellora", "lora@loop", "lora"]
    assert all(len(r["step_times_s"]) == 2 for r in rows.values())
    assert rows["lora@loop"]["costs"]["step_flops"] == rows["lora"]["costs"]["step_flops"]
    assert rows["hellora"]["trainable"] < rows["lora"]["trainable"]
