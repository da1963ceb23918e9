"""Read the conv / depthwise / dense layers of a TFLite flatbuffer (package ``tflite``) in
execution order, with weight and output shapes in PyTorch's layout, to compare zoo models with
the MLPerf Tiny files."""

from __future__ import annotations

WEIGHTED = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "depthwise", "FULLY_CONNECTED": "dense"}


def _nchw(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (shape[0], shape[3], shape[1], shape[2]) if len(shape) == 4 else shape


def weighted_layers(path: str) -> list[tuple[str, tuple[int, ...], tuple[int, ...]]]:
    """[(kind, weight shape, output shape)] with kind in conv / depthwise / dense."""
    import tflite

    with open(path, "rb") as f:
        buf = f.read()
    model = tflite.Model.GetRootAsModel(buf, 0)
    graph = model.Subgraphs(0)
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    layers = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        kind = WEIGHTED.get(names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode())))
        if kind is None:
            continue
        weight = tuple(int(d) for d in graph.Tensors(op.Inputs(1)).ShapeAsNumpy())
        if kind == "conv":  # [O, kh, kw, I] -> [O, I, kh, kw]
            weight = (weight[0], weight[3], weight[1], weight[2])
        elif kind == "depthwise":  # [1, kh, kw, C] -> [C, 1, kh, kw]
            weight = (weight[3], 1, weight[1], weight[2])
        output = tuple(int(d) for d in graph.Tensors(op.Outputs(0)).ShapeAsNumpy())
        layers.append((kind, weight, _nchw(output)))
    return layers
