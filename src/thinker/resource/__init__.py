"""model.bin: the packed, versioned program (writer, reader, layout constants)."""

from thinker.resource.reader import PackedModel, parse_model, read_model
from thinker.resource.writer import DynamicShape, PackInput, Placement, write_model

__all__ = ["DynamicShape", "PackInput", "PackedModel", "Placement", "parse_model", "read_model",
           "write_model"]
