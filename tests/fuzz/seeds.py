"""The seed corpus: small ONNX models (tests/c_executor) that together use every op, packed by
tpacker. Packed once per process and cached in memory."""

from __future__ import annotations

import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
for path in (TESTS, os.path.join(TESTS, "c_executor"), HERE):
    if path not in sys.path:
        sys.path.insert(0, path)

EXECUTOR = os.path.join(os.path.dirname(TESTS), "executor")
SANITIZE_BINARY = os.path.join(EXECUTOR, "build", "sanitize", "test_thinker")

_CACHE: dict[str, bytes] = {}


def seed_models() -> dict[str, tuple]:
    """name -> (ONNX builder, platform, keep_quant)."""
    from c_arith_models import ARITH_MODELS
    from c_models import MODELS
    from c_nonlinear_models import NONLINEAR_MODELS

    models = dict(MODELS)
    for name in ("ar_venus", "ar_bmm", "ar_div", "ar_reduce", "ar_resize", "ar_resize_opset10",
                 "ar_extremes", "ar_on_venus"):
        build, platform = ARITH_MODELS[name]
        models[name] = (build, platform, False)
    for name in ("nl_venus", "nl_arcs", "nl_venusA", "nl_extremes"):
        build, platform = NONLINEAR_MODELS[name]
        models[name] = (build, platform, False)
    return models


def pack_onnx(onnx_model, platform: str = "cortex-m", keep_quant: bool = False,
              workdir: str | None = None) -> bytes:
    """tpacker in-process: ONNX model -> model.bin bytes (raises tpacker's errors)."""
    import onnx

    from thinker.packer import Packer, PackOptions

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        src = os.path.join(tmp, "m.onnx")
        onnx.save(onnx_model, src)
        result = Packer(PackOptions(graph_path=src, output_path=os.path.join(tmp, "m.bin"),
                                    platform=platform, keep_quant=keep_quant,
                                    workspace=os.path.join(tmp, "ws"))).run()
    return result.model_bin


def seeds() -> dict[str, bytes]:
    if not _CACHE:
        for name, (build, platform, keep_quant) in seed_models().items():
            _CACHE[name] = pack_onnx(build(), platform, keep_quant)
    return dict(_CACHE)
