"""remove_edge_quant: drop Quant nodes on graph inputs and Dequant nodes on graph outputs so
the packed model's I/O is integer (the application quantizes once, outside)."""

from __future__ import annotations

from thinker.graph.ir import Graph
from thinker.passes.edit import consumers_of


def remove_edge_quant(graph: Graph) -> Graph:
    g = graph.copy()
    for i, name in enumerate(list(g.inputs)):
        users = consumers_of(g, name)
        if len(users) == 1 and users[0].op_type == "Quant" and name not in g.outputs:
            quant = users[0]
            g.nodes.remove(quant)
            g.inputs[i] = quant.outputs[0]
    for i, name in enumerate(list(g.outputs)):
        producer = next((n for n in g.nodes if name in n.outputs), None)
        if producer is None or producer.op_type != "Dequant" or consumers_of(g, name):
            continue
        source = producer.inputs[0]
        if source in g.inputs or source in g.outputs:
            continue
        g.nodes.remove(producer)
        g.outputs[i] = source
    g.remove_unused()
    return g
