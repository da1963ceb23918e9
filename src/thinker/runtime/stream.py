"""Running a streaming model (``tpacker --isstream``): feed chunks, the states carry over.

``Stream(model)`` wraps a loaded model whose graph lists ``streams`` (history input, state
output) pairs: ``run({input: chunk})`` feeds the current states into the history inputs,
returns the model outputs without the states, and keeps the new states for the next call;
``reset()`` starts a new stream (states zero). A chunk may have any length the model's dynamic
time axis allows. Each Stream has its own states, so several streams can share one model.
"""

from __future__ import annotations

import numpy as np

from thinker.errors import ThinkerInputError


class Stream:
    def __init__(self, model):
        pairs = list(getattr(model, "streams", None) or [])
        if not pairs:
            raise ThinkerInputError("this model has no streaming states; pack it with "
                                    "tpacker --isstream split_h|split_w")
        self.model = model
        self.pairs = pairs
        specs = {s.name: s for s in model.inputs}
        self.histories = {h: specs[h] for h, _ in pairs}
        states = {s for _, s in pairs}
        self.inputs = [s for s in model.inputs if s.name not in self.histories]
        self.outputs = [s for s in model.outputs if s.name not in states]
        self.states: dict[str, np.ndarray] = {}
        self.reset()

    def reset(self) -> None:
        """Start a new stream: every state back to zero."""
        self.states = {h: np.zeros(s.shape, dtype=s.dtype) for h, s in self.histories.items()}

    def run(self, feeds: dict[str, np.ndarray], hooks=()) -> dict[str, np.ndarray]:
        unknown = set(feeds) & set(self.histories)
        if unknown:
            raise ThinkerInputError(f"{sorted(unknown)} are the stream's own states; feed only "
                                    f"{[s.name for s in self.inputs]}")
        outputs = self.model.run({**feeds, **self.states}, hooks=hooks)
        for history, state in self.pairs:
            self.states[history] = outputs[state]
        return {s.name: outputs[s.name] for s in self.outputs}
