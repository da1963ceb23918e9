"""Which traced calls get their own quantizer module (``linger.trace.quantize_calls``)."""

from __future__ import annotations

# Traced calls that need their own quantizer module (an output exponent learned per call site):
# call_function target or call_method name -> (module class, type name for module_overrides).
# Modules register with ``quantized_call`` (see linger/modules/arith.py); the rewrite gives every
# call its own instance, placed under the module whose forward() made the call.
QUANTIZED_FUNCTIONS: dict = {}
QUANTIZED_METHODS: dict = {}


def quantized_call(type_name: str, functions=(), methods=()):
    """Class decorator: calls of ``functions`` / tensor ``methods`` become calls of a fresh
    instance of the class, built as ``cls(path, layer_settings)``."""

    def register(cls):
        for f in functions:
            QUANTIZED_FUNCTIONS[f] = (cls, type_name)
        for m in methods:
            QUANTIZED_METHODS[m] = (cls, type_name)
        return cls

    return register
