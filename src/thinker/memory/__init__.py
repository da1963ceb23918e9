"""Memory: buffer lifetimes, arena planners, placement by memory kind, and the report."""

from thinker.memory.lifetimes import Buffer, Lifetimes, compute_lifetimes, lower_bound
from thinker.memory.placement import MemoryPlan, parse_memory_overrides, plan_memory
from thinker.memory.planners import PLANNERS

__all__ = ["PLANNERS", "Buffer", "Lifetimes", "MemoryPlan", "compute_lifetimes", "lower_bound",
           "parse_memory_overrides", "plan_memory"]
