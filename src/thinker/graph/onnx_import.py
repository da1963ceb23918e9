"""ONNX -> Graph: constants, dialect mapping, topological order, shape/dtype/exponent inference.

Every problem that can be found without running the model (unsupported ops, missing
attributes, scales that are not powers of two) is collected and raised as ONE error, so a user
fixes their exporter once, not once per node.
"""

from __future__ import annotations

import os
from collections import deque

import numpy as np
import onnx
from onnx import helper, numpy_helper

from thinker.errors import ThinkerError, ThinkerModelError
from thinker.errors import name as shown_name
from thinker.graph import dialect
from thinker.graph.ir import Graph, Node, Tensor
from thinker.graph.onnx_export import EXPONENT_METADATA_PREFIX
from thinker.ops import OPS
from thinker.ops.base import REQUIRED

MAX_ELEMENTS = (1 << 31) - 1  # per tensor (the readers' limit, docs/format.md)


def load_onnx(path: str | os.PathLike) -> Graph:
    """Read an ONNX file (thinker or linger dialect) into a Graph."""
    path = os.fspath(path)
    where = shown_name(path)
    if not os.path.exists(path):
        raise ThinkerModelError(f"{where}: no such model file")
    if os.path.isdir(path):
        raise ThinkerModelError(f"{where}: is a folder, not an ONNX model file")
    if os.path.getsize(path) == 0:
        raise ThinkerModelError(f"{where}: empty file (0 bytes), not an ONNX model; export the "
                                "model again")
    try:
        model = onnx.load(path)
    except Exception as exc:  # protobuf raises several types for a file that is not ONNX
        raise ThinkerModelError(f"{where}: not a readable ONNX model "
                                f"({shown_name(exc)})") from None
    return import_model(model, source_path=path)


def _attr_value(attr: onnx.AttributeProto):
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, list):
        return [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v for v in value]
    return value


def _constant_value(node: onnx.NodeProto, where: str) -> np.ndarray:
    for attr in node.attribute:
        if attr.name == "value":
            return numpy_helper.to_array(attr.t)
        if attr.name in ("value_float", "value_int"):
            return np.array(helper.get_attribute_value(attr),
                            dtype=np.float32 if attr.name == "value_float" else np.int64)
        if attr.name in ("value_floats", "value_ints"):
            return np.array(helper.get_attribute_value(attr),
                            dtype=np.float32 if attr.name == "value_floats" else np.int64)
    raise ThinkerModelError(f"{where}: Constant node without a supported value attribute")


def _value_info_tensor(vi: onnx.ValueInfoProto, where: str) -> Tensor:
    ttype = vi.type.tensor_type
    if not ttype.HasField("shape"):
        raise ThinkerModelError(f"{where}: graph input '{shown_name(vi.name)}' has no shape")
    dims = []
    for i, d in enumerate(ttype.shape.dim):
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif i == 0:
            dims.append(1)  # a symbolic batch: shapes are inferred for batch 1
        else:
            raise ThinkerModelError(
                f"{where}: graph input '{shown_name(vi.name)}' has symbolic dimension {i} "
                f"('{shown_name(d.dim_param)}'); only the batch axis may be symbolic"
            )
    dtype = helper.tensor_dtype_to_np_dtype(ttype.elem_type)
    return Tensor(vi.name, tuple(dims), np.dtype(dtype))


def _topological(nodes: list[Node], available: set[str], where: str) -> list[Node]:
    """Kahn's algorithm, keeping the file's order among ready nodes."""
    producers = {out: i for i, n in enumerate(nodes) for out in n.outputs}
    waiting = [0] * len(nodes)
    users: dict[int, list[int]] = {}
    for i, n in enumerate(nodes):
        for name in n.inputs:
            if name and name not in available:
                if name not in producers:
                    raise ThinkerModelError(
                        f"{where}: {n.label()} reads tensor '{shown_name(name)}', which no "
                        "node, input or "
                        "initializer provides"
                    )
                waiting[i] += 1
                users.setdefault(producers[name], []).append(i)
    ready = deque(i for i in range(len(nodes)) if waiting[i] == 0)
    order = []
    while ready:
        i = ready.popleft()
        order.append(nodes[i])
        for j in users.get(i, []):
            waiting[j] -= 1
            if waiting[j] == 0:
                ready.append(j)
    if len(order) != len(nodes):
        stuck = [n.label() for n in nodes if n not in order][:5]
        raise ThinkerModelError(f"{where}: the graph has a cycle through {', '.join(stuck)}")
    return order


def import_model(model: onnx.ModelProto, source_path: str = "") -> Graph:
    where = shown_name(source_path or (model.graph.name or "model"))
    from thinker.graph import qdq_import

    if qdq_import.is_standard_quantized(model):  # QDQ / QOperator: exact, or an error
        model = qdq_import.to_thinker(model, where)
    g = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 11)
    exponents_meta = {
        p.key[len(EXPONENT_METADATA_PREFIX):]: int(p.value)
        for p in model.metadata_props if p.key.startswith(EXPONENT_METADATA_PREFIX)
    }

    tensors: dict[str, Tensor] = {}
    for init in g.initializer:
        data = numpy_helper.to_array(init)
        tensors[init.name] = Tensor(init.name, tuple(data.shape), data.dtype, None, data)

    inputs = []
    for vi in g.input:
        if vi.name in tensors:
            continue  # old exporters list initializers as inputs too
        t = _value_info_tensor(vi, where)
        t.exponent = exponents_meta.get(vi.name)
        tensors[vi.name] = t
        inputs.append(vi.name)

    nodes: list[Node] = []
    problems: list[str] = []
    unsupported: list[str] = []
    for index, proto in enumerate(g.node):
        name = proto.name or f"{proto.op_type}_{index}"
        if proto.op_type == "Constant":
            for out in proto.output:
                data = _constant_value(proto, f"{where}: Constant '{name}'")
                tensors[out] = Tensor(out, tuple(data.shape), data.dtype, None, data)
            continue
        node = Node(
            op_type=dialect.canonical_op_type(proto.op_type),
            name=name,
            inputs=list(proto.input),
            outputs=list(proto.output),
            attrs={a.name: _attr_value(a) for a in proto.attribute},
            source_op_type=proto.op_type,
        )
        op = OPS.get(node.op_type)
        if op is None:
            shown = node.op_type if node.op_type == proto.op_type else \
                f"{node.op_type} (as {proto.op_type})"
            domain = f" [domain '{proto.domain}']" if proto.domain else ""
            unsupported.append((f"{shown_name(shown)}{shown_name(domain)}", shown_name(name)))
            continue
        problems += dialect.normalize_attrs(node)
        problems += dialect.check_scales(node)
        for key, default in op.attrs.items():
            if key not in node.attrs:
                if default is REQUIRED:
                    problems.append(f"{node.label()}: required attribute '{key}' is missing")
                else:
                    node.attrs[key] = default
        n_in = len(node.inputs)
        if not op.min_inputs <= n_in <= op.max_inputs:
            problems.append(
                f"{node.label()}: has {n_in} inputs, expected {op.min_inputs}"
                + (f"..{op.max_inputs}" if op.max_inputs != op.min_inputs else "")
            )
        nodes.append(node)

    if unsupported or problems:
        counts = [f"{len(unsupported)} unsupported op(s)"] if unsupported else []
        counts += [f"{len(problems)} other problem(s)" if unsupported else
                   f"{len(problems)} problem(s)"] if problems else []
        accepted = f"; {qdq_import.ACCEPTED_FORMATS}" if unsupported else ""
        raise ThinkerModelError(f"{where}: cannot import model ({', '.join(counts)}){accepted}",
                                problems=_grouped(unsupported) + problems)
    if not g.output:
        raise ThinkerModelError(f"{where}: the graph has no outputs (an empty or truncated "
                                "model?); export the model again")

    nodes = _topological(nodes, set(tensors), where)
    graph = Graph(
        name=g.name or os.path.splitext(os.path.basename(source_path))[0] or "model",
        nodes=nodes, tensors=tensors, inputs=inputs, outputs=[o.name for o in g.output],
        opset=opset, source_path=source_path,
    )
    dialect.quantize_recurrent_states(graph)
    _infer_input_exponents(graph)
    infer_shapes(graph)
    for name in graph.outputs:
        if name not in graph.tensors:
            raise ThinkerModelError(f"{where}: graph output '{shown_name(name)}' is never "
                                    "produced")
    return graph


def _grouped(unsupported: list[tuple[str, str]]) -> list[str]:
    """One line per unsupported op type (how many nodes, the first few names), so a float
    model gives a short list, not one line per node."""
    by_type: dict[str, list[str]] = {}
    for op, node in unsupported:
        by_type.setdefault(op, []).append(node)
    lines = []
    for op, nodes in by_type.items():
        names = ", ".join(f"'{n}'" for n in nodes[:3]) + (", ..." if len(nodes) > 3 else "")
        lines.append(f"unsupported op {op} at {len(nodes)} node(s): {names} (supported ops: "
                     "docs/ops.md)")
    return lines


def _infer_input_exponents(graph: Graph) -> None:
    """An integer graph input without recorded exponent takes its first consumer's scale_x."""
    from thinker.qmath import exponent_of_scale

    consumers = graph.consumers()
    for name in graph.inputs:
        t = graph.tensors[name]
        if t.exponent is not None or not np.issubdtype(t.dtype, np.integer):
            continue
        for node in consumers.get(name, []):
            scale = node.attrs.get("scale_x")
            if scale is not None:
                t.exponent = exponent_of_scale(scale, f"{node.label()} attribute scale_x")
                break


def infer_shapes(graph: Graph) -> None:
    """Fill every node output's shape, dtype and exponent; fold nodes whose inputs are all
    constants into constants (e.g. shape arithmetic), removing them from the node list."""
    from thinker.resource.rules import node_problems

    kept = []
    for node in graph.nodes:
        op = OPS[node.op_type]
        ins = [graph.tensors[n] if n else None for n in node.inputs]
        problems = node_problems(node, ins)  # the model rules, before any shape arithmetic
        if problems:
            where = shown_name(graph.source_path or graph.name or "model")
            raise ThinkerModelError(f"{where}: {len(problems)} problem(s)", problems=problems)
        try:
            outs = op.infer(node, ins)
        except ThinkerError:
            raise
        except Exception as exc:  # a malformed node: a user error, never a raw crash
            raise ThinkerModelError(f"{node.label()}: malformed node "
                                    f"({shown_name(type(exc).__name__)}: {shown_name(exc)})") \
                from None
        for t in outs:
            if int(np.prod(t.shape, dtype=object)) > MAX_ELEMENTS:
                raise ThinkerModelError(
                    f"{node.label()}: output shape {list(t.shape)} has more than "
                    f"{MAX_ELEMENTS:,} elements, beyond what model.bin and the executors hold")
        if len(outs) != len(node.outputs):
            raise ThinkerModelError(
                f"{node.label()}: produces {len(outs)} outputs but the file lists "
                f"{len(node.outputs)}"
            )
        for name, t in zip(node.outputs, outs, strict=True):
            t.name = name
            graph.tensors[name] = t
        if ins and all(t is None or t.is_constant for t in ins):
            try:
                values = op.prepare(node, ins, outs)(*(None if t is None else t.data for t in ins))
            except ThinkerError:
                raise
            except Exception as exc:  # folding a malformed node
                raise ThinkerModelError(f"{node.label()}: cannot fold this constant node "
                                        f"({shown_name(type(exc).__name__)}: "
                                        f"{shown_name(exc)})") from None
            for t, v in zip(outs, values, strict=True):
                t.data = np.asarray(v)
            continue
        kept.append(node)
    graph.nodes = kept
