#!/usr/bin/env python3
"""Print the op types a model.bin uses, space separated (for `make OPS_FROM=model.bin`).

Standalone on purpose (standard library only): a firmware build machine needs no thinker
install. Reads the header, section table and op records of docs/format.md; the executor
validates everything else at init."""

import struct
import sys


def op_types(data: bytes) -> list[str]:
    if data[:8] != b"THINKER\x00":
        raise ValueError("not a thinker model.bin")
    n_sections, table = struct.unpack_from("<II", data, 16)
    sections = {}
    for i in range(n_sections):
        kind, offset, size, count = struct.unpack_from("<IIII", data, table + 16 * i)
        sections[kind] = (offset, size, count)
    s_off, s_size, _ = sections[1]
    strings = data[s_off: s_off + s_size]
    o_off, _, o_count = sections[3]
    pos, types = o_off, []
    for _ in range(o_count):
        type_off, _name, n_in, n_out, n_attrs, _r = struct.unpack_from("<IIHHHH", data, pos)
        pos += 16 + 4 * (n_in + n_out)
        for _ in range(n_attrs):
            _key, _kind, count = struct.unpack_from("<IBxH", data, pos)
            pos += 8 + 4 * count
        name = strings[type_off: strings.index(b"\x00", type_off)].decode()
        if name not in types:
            types.append(name)
    return types


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: model_ops.py model.bin", file=sys.stderr)
        return 2
    try:
        with open(sys.argv[1], "rb") as f:
            print(" ".join(op_types(f.read())))
    except (OSError, ValueError, KeyError, struct.error) as exc:
        print(f"model_ops.py: {sys.argv[1]}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
