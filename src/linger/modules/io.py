"""Where float meets integer: model inputs (Quant), model outputs (Dequant), and disabled
parts of the model that stay float inside (not exportable)."""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils._pytree import tree_leaves, tree_map

from linger import recorder
from linger.config import LayerSettings
from linger.errors import LingerUnsupportedError
from linger.modules.base import QuantizedLayer, mode_attrs, round_mode_of
from linger.qtensor import QTensor
from linger.quantizer import ActivationQuantizer
from thinker import qmath


class QInput(QuantizedLayer, nn.Module):
    """Quantizes one model input (``Quant``); non-float inputs pass through."""

    def __init__(self, path: str, settings: LayerSettings):
        super().__init__()
        self.linger_path, self.linger_settings = path, settings
        self.quantizer = ActivationQuantizer(settings.activate_bits, settings.qat_method,
                                             settings.momentum, path,
                                             round_mode=settings.round_mode)

    def forward(self, x):
        if not isinstance(x, torch.Tensor) or isinstance(x, QTensor) or \
                not x.is_floating_point():
            return x
        bits = self.linger_settings.activate_bits
        if not self.exact_mode():
            values, q = self.quantizer(x)
            return QTensor.wrap(values, q, bits, exact=False)
        q = self.quantizer.frozen_exponent()
        mode = round_mode_of(self.linger_settings)
        out = QTensor.from_ints(qmath.quantize_mode(x.detach().numpy(), q, bits, mode), q, bits)
        rec = recorder.active()
        if rec is not None:
            rec.add_node("Quant", [rec.float_input_name(x)], [out],
                         {"scale_x": 2.0 ** q, "data_bits": bits, **mode_attrs(mode)},
                         self.linger_path)
        return out


class FloatIsland(QuantizedLayer, nn.Module):
    """A module kept float (``disable_module`` / ``disable_submodel``): it gets the float values
    of its quantized inputs and returns float values. Where the quantized part uses them again,
    a ``FloatReentry`` quantizes them, as a model input is (``trace.requantize_float_outputs``).
    Trains, does not export."""

    def __init__(self, module: nn.Module, path: str, settings: LayerSettings):
        super().__init__()
        self.__dict__["module"] = module  # not a child: its parameters keep their own names
        self.linger_path, self.linger_settings = path, settings

    def describe(self) -> str:
        return f"{type(self.module).__name__} '{self.linger_path}'"

    def forward(self, *args, **kwargs):
        if recorder.active() is not None:
            raise LingerUnsupportedError(
                f"{self.describe()} is kept float (disable_module/disable_submodel) and cannot "
                "be exported to the integer graph; quantize it or cut the model before it")
        unwrap = lambda v: v.plain if isinstance(v, QTensor) else v  # noqa: E731
        return self.module(*tree_map(unwrap, args), **tree_map(unwrap, kwargs))


class FloatReentry(QInput):
    """Quantizes a float tensor that a float part (``FloatIsland``) hands back to the quantized
    part, with its own quantizer, exactly as a model input (never exported: the float part
    before it cannot be)."""

    def forward(self, x):
        if isinstance(x, (tuple, list, dict)):
            if any(isinstance(v, torch.Tensor) and not isinstance(v, QTensor)
                   for v in tree_leaves(x)):
                raise LingerUnsupportedError(
                    f"'{self.linger_path}': the float part's outputs reach the quantized part "
                    "as one container; take them apart in forward (e.g. y, (h, c) = "
                    "self.rnn(x)), so each tensor gets its own quantizer")
            return x
        return super().forward(x)


def finish_outputs(value):
    """Model outputs leave as ordinary float tensors (the real values); when exporting, each
    becomes a ``Dequant`` to a float graph output."""
    rec = recorder.active()

    def finish(v):
        if isinstance(v, QTensor):
            if rec is not None:
                rec.add_output(v)
            return v.plain
        if isinstance(v, torch.Tensor) and rec is not None:
            raise LingerUnsupportedError(
                "a model output is a float tensor that no quantized op produced; "
                "only quantized outputs can be exported")
        return v

    return tree_map(finish, value)


class ModelOutputs(nn.Module):
    """The last call of a quantized model: ``finish_outputs`` as a module, so it survives the
    re-tracing of a pickled model."""

    def forward(self, value):
        return finish_outputs(value)
