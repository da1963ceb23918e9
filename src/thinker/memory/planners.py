"""Arena planners behind one interface: buffers with sizes and lifetimes in, offsets out.

Every planner places buffers one at a time at an offset that collides with no already placed
buffer whose lifetime overlaps; they differ in the order they take buffers and in how they
choose among the gaps (first fit = lowest offset, best fit = tightest gap).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import numpy as np

from thinker.memory.lifetimes import Buffer, lower_bound

Plan = dict[int, int]  # buffer id -> offset


def _place(order: Sequence[Buffer], best_fit: bool) -> Plan:
    # the placed buffers' lifetimes and extents as arrays: finding the ones that overlap a
    # buffer is one vectorized test (a Python scan was quadratic in the thousands of
    # buffers of a patched graph)
    n = len(order)
    firsts, lasts = np.empty(n, np.int64), np.empty(n, np.int64)
    starts, ends = np.empty(n, np.int64), np.empty(n, np.int64)
    offsets: Plan = {}
    for i, b in enumerate(order):
        hit = (firsts[:i] <= b.last) & (lasts[:i] >= b.first)
        s, e = starts[:i][hit], ends[:i][hit]
        ranks = np.lexsort((e, s))
        busy = zip(s[ranks].tolist(), e[ranks].tolist(), strict=True)
        candidate, best, best_gap = 0, None, None
        for start, end in busy:
            if start - candidate >= b.size:
                gap = start - candidate
                if not best_fit:
                    best = candidate
                    break
                if best_gap is None or gap < best_gap:
                    best, best_gap = candidate, gap
            candidate = max(candidate, end)
        if best is None:
            best = candidate
        offsets[b.id] = best
        firsts[i], lasts[i], starts[i], ends[i] = b.first, b.last, best, best + b.size
    return offsets


def arena_size(buffers: Sequence[Buffer], plan: Plan) -> int:
    return max((plan[b.id] + b.size for b in buffers), default=0)


def greedy_by_size(buffers: Sequence[Buffer]) -> Plan:
    """Largest first (TFLM's greedy planner), ties: longest lifetime first."""
    order = sorted(buffers, key=lambda b: (-b.size, -(b.last - b.first), b.first))
    return _place(order, best_fit=False)


def greedy_by_breadth(buffers: Sequence[Buffer]) -> Plan:
    """Steps with the most live bytes first; within a step, its largest buffers first."""
    if not buffers:
        return {}
    first, last = min(b.first for b in buffers), max(b.last for b in buffers)
    live = {t: [b for b in buffers if b.first <= t <= b.last] for t in range(first, last + 1)}
    steps = sorted(live, key=lambda t: -sum(b.size for b in live[t]))
    order, seen = [], set()
    for t in steps:
        for b in sorted(live[t], key=lambda b: -b.size):
            if b.id not in seen:
                seen.add(b.id)
                order.append(b)
    return _place(order, best_fit=False)


def by_order(buffers: Sequence[Buffer]) -> Plan:
    """Execution order (as buffers are born), each into the tightest gap."""
    return _place(sorted(buffers, key=lambda b: (b.first, -b.size)), best_fit=True)


def search(buffers: Sequence[Buffer], tries: int = 200, seed: int = 0) -> Plan:
    """Many orderings x {first, best} fit, keeping the smallest arena; stops at the lower
    bound. Orderings: the greedy keys, then random tie-breaks of size-descending order."""
    if not buffers:
        return {}
    target = lower_bound(list(buffers), max(b.last for b in buffers) + 1)
    keys: list[Callable[[Buffer], tuple]] = [
        lambda b: (-b.size, -(b.last - b.first)),
        lambda b: (-(b.last - b.first), -b.size),
        lambda b: (b.first, -b.size),
        lambda b: (-b.size * (b.last - b.first + 1),),
        lambda b: (-b.last, -b.size),
    ]
    best_plan, best_size = None, None
    rng = random.Random(seed)
    orders = [sorted(buffers, key=k) for k in keys]
    if len(buffers) > 500:  # each try is quadratic: thousands of buffers (patched graphs) get fewer
        tries = max(10, tries * 500 // len(buffers))
    for _ in range(tries):
        noisy = sorted(buffers, key=lambda b: (-b.size * rng.uniform(0.7, 1.3), rng.random()))
        orders.append(noisy)
    for order in orders:
        for best_fit in (False, True):
            plan = _place(order, best_fit)
            size = arena_size(buffers, plan)
            if best_size is None or size < best_size:
                best_plan, best_size = plan, size
                if size <= target:
                    return best_plan
    return best_plan


PLANNERS: dict[str, Callable[[Sequence[Buffer]], Plan]] = {
    "greedy_by_size": greedy_by_size,
    "greedy_by_breadth": greedy_by_breadth,
    "by_order": by_order,
    "search": search,
}
