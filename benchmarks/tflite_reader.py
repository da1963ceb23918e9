"""Read a TFLite flatbuffer's operators in execution order (package ``tflite``): the shared
reader behind the MLPerf Tiny twins (mlperf_models.py) and the zoo shape tests."""

from __future__ import annotations


def read_ops(path: str):
    """([(op name, input shapes, input ids, output id, output shape, options)], graph input id,
    graph input shape) of a .tflite file, operators in execution order."""
    import tflite

    with open(path, "rb") as f:
        buf = f.read()
    model = tflite.Model.GetRootAsModel(buf, 0)
    graph = model.Subgraphs(0)
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    ops = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()))
        ins = [tuple(int(d) for d in graph.Tensors(op.Inputs(j)).ShapeAsNumpy())
               if op.Inputs(j) >= 0 else None for j in range(op.InputsLength())]
        ids = [op.Inputs(j) for j in range(op.InputsLength())]
        out = tuple(int(d) for d in graph.Tensors(op.Outputs(0)).ShapeAsNumpy())
        opts = {}
        raw = op.BuiltinOptions()
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            o = tflite.Conv2DOptions() if name == "CONV_2D" else tflite.DepthwiseConv2DOptions()
            o.Init(raw.Bytes, raw.Pos)
            opts = {"stride": (o.StrideH(), o.StrideW()), "same": o.Padding() == 0,
                    "act": o.FusedActivationFunction()}
        elif name == "AVERAGE_POOL_2D":
            o = tflite.Pool2DOptions()
            o.Init(raw.Bytes, raw.Pos)
            opts = {"kernel": (o.FilterHeight(), o.FilterWidth()),
                    "stride": (o.StrideH(), o.StrideW()), "same": o.Padding() == 0}
        elif name == "ADD":
            o = tflite.AddOptions()
            o.Init(raw.Bytes, raw.Pos)
            opts = {"act": o.FusedActivationFunction()}
        ops.append((name, ins, ids, op.Outputs(0), out, opts))
    input_id = graph.Inputs(0)
    input_shape = tuple(int(d) for d in graph.Tensors(input_id).ShapeAsNumpy())
    return ops, input_id, input_shape


def nchw(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (shape[0], shape[3], shape[1], shape[2]) if len(shape) == 4 else shape
