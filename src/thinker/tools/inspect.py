"""thinker report: what is inside a model.bin, without running it."""

from __future__ import annotations

import struct
import zlib
from collections import Counter

from thinker.devices import list_profiles, load_profile
from thinker.errors import ThinkerFormatError, printable
from thinker.resource import format as fmt
from thinker.resource.reader import PackedModel, parse_model


def platform_name(platform_id: int) -> str:
    for name in list_profiles():
        if load_profile(name).id == platform_id:
            return name
    return f"unknown ({platform_id})"


def crc_status(data: bytes) -> str:
    if len(data) < fmt.HEADER_SIZE:
        return "file too short"
    stored = struct.unpack_from("<I", data, 24)[0]
    actual = zlib.crc32(data[fmt.HEADER_SIZE:]) & 0xFFFFFFFF
    return f"ok ({stored:08x})" if stored == actual else \
        f"BAD (stored {stored:08x}, computed {actual:08x})"


def describe_model(data: bytes, path: str) -> str:
    status = crc_status(data)
    try:
        packed: PackedModel = parse_model(data, path, check_crc=False)
    except ThinkerFormatError as exc:
        raise ThinkerFormatError(f"{exc} [CRC: {status}]") from None
    version = struct.unpack_from("<H", data, 8)[0]
    lines = [f"{path}: thinker model.bin format version {version}, {len(data):,} bytes, "
             f"CRC {status}",
             f"platform: {platform_name(packed.platform_id)}"]

    def tensor_line(tid: int) -> str:
        r = packed.tensors[tid]
        q = f", exponent {r.exponent}" if r.exponent is not None else ""
        dtype = fmt.DTYPE_TO_NUMPY[r.dtype_code].name
        return f"  {printable(r.name, 120)}: {dtype}{list(r.shape)}{q}"

    lines.append("inputs:")
    lines += [tensor_line(t) for t in packed.inputs]
    lines.append("outputs:")
    lines += [tensor_line(t) for t in packed.outputs]
    counts = Counter(op.op_type for op in packed.ops)
    kinds = ", ".join(f"{printable(k, 40)} x{v}" for k, v in sorted(counts.items()))
    lines.append(f"ops: {len(packed.ops)} ({kinds})")
    lines.append("memory:")
    lines.append(f"  flash (params in this file): {len(packed.params):,} B")
    from thinker.memory.report import breakdown_text, packed_arena_usage

    usage = packed_arena_usage(packed)
    for kind, (size, align) in sorted(packed.arenas.items()):
        u = usage[kind]
        lines.append(f"  {fmt.MEMORY_KIND_NAMES[kind]} arena: {size:,} B (alignment {align}), "
                     f"lower bound {u['lower_bound']:,} B, peak at op "
                     f"'{printable(u['peak_op'], 60)}' (step {u['peak_step']}): "
                     + breakdown_text(u["at_peak"]))
    if packed.scratch:
        lines.append(f"  kernel scratch: {len(packed.scratch)} ops, planned inside the arenas "
                     f"(largest {max(s for *_, s in packed.scratch):,} B)")
    constants = sum(r.nbytes for r in packed.tensors if r.is_constant)
    lines.append(f"tensors: {len(packed.tensors)} ({constants:,} B of constants)")
    if packed.dynamic_shapes:
        for tid, axis, lo, hi, factor in packed.dynamic_shapes:
            shown = printable(packed.tensors[tid].name, 120)
            lines.append(f"dynamic shape: {shown} axis {axis} in [{lo}, {hi}] step {factor}")
    return "\n".join(lines)
