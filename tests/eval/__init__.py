"""Tests for hellora.eval: scorers, pass@k, HumanEval through the real sandbox, sandbox security."""
