"""``-m NAME:KIND`` items with the original tpacker's spellings resolved against the graph
(docs/cli.md): ``inputs[i]`` / ``outputs[i]`` name the i-th graph input / output, ``params``
every constant; ``share-mem`` (the original's name), ``share_memory`` and ``sram`` mean
share-memory; kinds in any case; several items may be comma-separated. A tensor literally
named like one of these keeps its own meaning."""

from __future__ import annotations

import re

import numpy as np

from thinker.errors import ThinkerInputError
from thinker.errors import name as shown
from thinker.graph.ir import Graph

KIND_ALIASES = {"share-memory": "share-memory", "share-mem": "share-memory",
                "share_mem": "share-memory", "share_memory": "share-memory",
                "sram": "share-memory", "psram": "psram", "flash": "flash"}
_INDEXED = re.compile(r"^(inputs|outputs)\[(\d+)\]$")


def expand_memory_items(items: list[str], graph: Graph) -> list[str]:
    """Canonical ``name:kind`` items for ``parse_memory_overrides``."""
    result = []
    for item in (p.strip() for raw in items for p in str(raw).split(",")):
        if not item:
            continue
        name, sep, kind = item.rpartition(":")
        kind = KIND_ALIASES.get(kind.strip().lower(), kind) if sep else kind
        if not sep or name in graph.tensors:
            result.append(f"{name}:{kind}" if sep else item)
            continue
        match = _INDEXED.match(name.strip())
        if match:
            names = graph.inputs if match.group(1) == "inputs" else graph.outputs
            index = int(match.group(2))
            if index >= len(names):
                raise ThinkerInputError(
                    f"-m {shown(item)}: the model has {len(names)} {match.group(1)} "
                    f"({', '.join(shown(n) for n in names)})")
            result.append(f"{names[index]}:{kind}")
        elif name.strip() == "params":
            used = {n for node in graph.nodes for n in node.inputs if n}
            result += [f"{n}:{kind}" for n, t in graph.tensors.items()
                       if t.is_constant and n in used and t.data is not None
                       and np.asarray(t.data).size]
        else:
            result.append(f"{name}:{kind}")
    return result
