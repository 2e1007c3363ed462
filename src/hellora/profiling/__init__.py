"""Counting which experts a task routes to: router hooks, the saved `ExpertProfile`, forward-only profiling."""

from hellora.profiling.counter import ExpertActivationCounter
from hellora.profiling.profile import ExpertProfile, compare_profiles
from hellora.profiling.forward import profile_experts

__all__ = ["ExpertActivationCounter", "ExpertProfile", "compare_profiles", "profile_experts"]
