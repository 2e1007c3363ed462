"""Benchmarks: step time, memory and profiling cost, side by side in one process."""
