"""The Cortex-M4 build of the C executor on an emulated core (unicorn), op by op.

``build_runner(build_dir)`` cross-compiles the executor and ``executor/probe/m4_runner.c``
(``make CROSS=arm-none-eabi- CPU=cortex-m4``); ``run(elf, model_bin, input_bytes)`` loads the
runner's ELF segments, writes the model, the input and the runner's I/O block into emulator RAM,
runs until the runner's final BKPT and returns the outputs' bytes with the instructions executed
per op (the runner writes the running op's index to its I/O block; every executed basic block
is attributed to it, counting Thumb-2 instructions by their encoded length). With
``write_bounds`` it also checks that each op writes only where the plan lets it
(``planned_writes``) and lists every other write into the arenas.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXECUTOR = os.path.join(ROOT, "executor")

IO_ADDRESS = 0x20000000  # RUNNER_IO_ADDRESS in m4_runner.c
RAM_SIZE = 8 << 20
CODE_SIZE = 2 << 20
IO_FIELDS = ("model", "model_size", "input", "input_size", "arena", "arena_size", "output",
             "output_size", "op", "status", "n_ops")
MEM_AT = IO_ADDRESS + 4 * (len(IO_FIELDS) + 1)  # io->mem: (kind, base, size) per request
MAX_MEMORY = 4  # THINKER_MAX_MEMORY
ARENA_KINDS = (2, 3)  # THINKER_MEM_PSRAM, THINKER_MEM_SHARE


def available() -> str | None:
    """None when the emulated run can work here, else why not."""
    if shutil.which("arm-none-eabi-gcc") is None:
        return "arm-none-eabi-gcc missing (apt-get install gcc-arm-none-eabi)"
    try:
        import unicorn  # noqa: F401
    except ImportError:
        return "unicorn missing (pip install unicorn)"
    return None


def build_runner(build_dir: str, *make_args: str) -> str:
    """Path of m4_runner.elf built into ``build_dir`` (absolute)."""
    build_dir = os.path.abspath(build_dir)
    elf = os.path.join(build_dir, "m4_runner.elf")
    subprocess.run(["make", "-C", EXECUTOR, "CROSS=arm-none-eabi-", "CPU=cortex-m4",
                    f"BUILD={build_dir}", *make_args, elf], check=True, capture_output=True)
    return elf


def _segments(elf: bytes) -> tuple[int, list[tuple[int, bytes, int]]]:
    """(entry, [(address, file bytes, memory size)]) of an ELF32 little-endian file."""
    if elf[:4] != b"\x7fELF" or elf[4] != 1 or elf[5] != 1:
        raise ValueError("not an ELF32 little-endian file")
    entry, phoff = struct.unpack_from("<II", elf, 24)
    phentsize, phnum = struct.unpack_from("<HH", elf, 42)
    out = []
    for i in range(phnum):
        p_type, off, vaddr, _paddr, filesz, memsz = struct.unpack_from("<IIIIII", elf,
                                                                        phoff + i * phentsize)
        if p_type == 1:  # PT_LOAD
            out.append((vaddr, elf[off:off + filesz], memsz))
    return entry, out


def _thumb_count(code: bytes) -> int:
    """Number of Thumb-2 instructions in a straight run of code."""
    i = n = 0
    while i + 1 < len(code):
        first = code[i + 1] >> 3  # top 5 bits of the leading halfword
        i += 4 if first in (0b11101, 0b11110, 0b11111) else 2
        n += 1
    return n


def planned_writes(model_bin: bytes) -> dict[int, list[tuple[int, int, int]]]:
    """Per op index, the (memory kind, arena offset, bytes) it may write: its outputs and its
    planned scratch region (model.bin sections 2 and 9). Not for streaming models, whose ops
    also write their state tensors."""
    from thinker.resource.reader import parse_model

    model = parse_model(model_bin, "model.bin")
    allowed: dict[int, list[tuple[int, int, int]]] = {}
    for i, op in enumerate(model.ops):
        allowed[i] = [(model.tensors[t].memory, model.tensors[t].offset, model.tensors[t].nbytes)
                      for t in op.outputs if t < len(model.tensors)]
    for op, kind, offset, size in model.scratch:
        allowed.setdefault(op, []).append((kind, offset, size))
    return allowed


def run(elf_path: str, model_bin: bytes, input_bytes: bytes, output_capacity: int = 1 << 16,
        max_instructions: int = 2_000_000_000,
        by_block: dict[int, int] | None = None,
        write_bounds: dict[int, list[tuple[int, int, int]]] | None = None,
        stray_writes: list[tuple[int, int, int]] | None = None) -> tuple[bytes, list[int]]:
    """(the outputs' bytes concatenated in order, instructions executed per op) of one forward
    on the emulated core (input 0 fed). ``by_block``, when given, receives the instructions
    executed per block start address over the whole run (``functions`` names them). With
    ``write_bounds`` (``planned_writes``), every arena byte (PSRAM, share-memory) an op changes
    outside its allowed ranges is appended to ``stray_writes`` as (op, memory kind, arena
    offset) (a write of the byte's old value goes unseen)."""
    from unicorn import (
        UC_ARCH_ARM,
        UC_HOOK_BLOCK,
        UC_HOOK_INTR,
        UC_HOOK_MEM_WRITE,
        UC_MODE_MCLASS,
        UC_MODE_THUMB,
        Uc,
    )
    from unicorn.arm_const import UC_ARM_REG_SP

    with open(elf_path, "rb") as f:
        entry, segments = _segments(f.read())
    uc = Uc(UC_ARCH_ARM, UC_MODE_THUMB | UC_MODE_MCLASS)
    try:
        from unicorn.arm_const import UC_CPU_ARM_CORTEX_M4
        uc.ctl_set_cpu_model(UC_CPU_ARM_CORTEX_M4)
    except (ImportError, AttributeError):
        pass
    uc.mem_map(0, CODE_SIZE)
    uc.mem_map(IO_ADDRESS, RAM_SIZE)
    for address, data, memsz in segments:
        uc.mem_write(address, data + bytes(memsz - len(data)))

    # RAM: I/O block, model (16-aligned), input, output, arena, stack at the top
    model_at = IO_ADDRESS + 0x100
    input_at = (model_at + len(model_bin) + 15) & ~15
    output_at = (input_at + len(input_bytes) + 15) & ~15
    arena_at = (output_at + output_capacity + 15) & ~15
    stack_top = IO_ADDRESS + RAM_SIZE
    arena_size = stack_top - (64 << 10) - arena_at
    if arena_size <= 0:
        raise ValueError("model too large for the emulator's RAM")
    # arena bytes start as noise (fixed seed): a kernel reading bytes nobody wrote, or writing
    # a stray byte that happens to equal its old value, shows instead of hiding in zeros
    uc.mem_write(arena_at, np.random.default_rng(20261127).integers(
        0, 256, arena_size, dtype=np.uint8).tobytes())
    uc.mem_write(model_at, model_bin)
    uc.mem_write(input_at, input_bytes)
    io = [model_at, len(model_bin), input_at, len(input_bytes), arena_at, arena_size, output_at,
          output_capacity, 0xFFFFFFFF, 0xFFFFFFFF, 0]
    uc.mem_write(IO_ADDRESS, struct.pack("<11I", *io))
    uc.reg_write(UC_ARM_REG_SP, stack_top)

    # executed blocks counted per (op, block); instructions per block decoded once at the end
    current = [0xFFFFFFFF]
    blocks: dict[int, dict[tuple[int, int], int]] = {}
    op_field = IO_ADDRESS + 4 * IO_FIELDS.index("op")

    def on_block(_emu, address, size, _user):
        seen = blocks.setdefault(current[0], {})
        key = (address, size)
        seen[key] = seen.get(key, 0) + 1

    # write bounds: the arenas are read at every op boundary and each finished op's changes
    # outside its allowed ranges recorded (no write hook on the arenas: unicorn 2.1's slow
    # memory path, taken once one is set, computed a DSP kernel's last outputs differently)
    arenas: list[tuple[int, int, int]] = []  # (kind, base, size), read at the first op
    snapshot: list[bytes] = []

    def check_op(emu, op):
        if not arenas:
            words = struct.unpack(f"<{1 + 3 * MAX_MEMORY}I",
                                  bytes(emu.mem_read(MEM_AT - 4, 4 * (1 + 3 * MAX_MEMORY))))
            arenas.extend((k, b, n) for k, b, n in zip(*[iter(words[1:1 + 3 * words[0]])] * 3,
                                                        strict=True) if k in ARENA_KINDS)
        now = [np.frombuffer(bytes(emu.mem_read(b, n)), np.uint8) for _, b, n in arenas]
        if snapshot and op != 0xFFFFFFFF:
            for (kind, _, n), before, after in zip(arenas, snapshot, now, strict=True):
                allowed = np.zeros(n, bool)
                for k, o, m in write_bounds.get(op, ()):
                    if k == kind:
                        allowed[o:o + m] = True
                stray_writes.extend((op, kind, offset) for offset in
                                    np.flatnonzero((before != after) & ~allowed).tolist())
        snapshot[:] = now

    def on_op(emu, _access, _address, _size, value, _user):
        if write_bounds is not None:
            check_op(emu, current[0])
        current[0] = value & 0xFFFFFFFF

    def on_interrupt(emu, _number, _user):  # the runner's BKPT: done
        emu.emu_stop()

    if write_bounds is not None and stray_writes is None:
        raise ValueError("write_bounds needs a stray_writes list")
    uc.hook_add(UC_HOOK_BLOCK, on_block)
    uc.hook_add(UC_HOOK_MEM_WRITE, on_op, begin=op_field, end=op_field + 3)
    uc.hook_add(UC_HOOK_INTR, on_interrupt)
    uc.emu_start(entry | 1, 0xFFFFFFFF, count=max_instructions)
    fields = dict(zip(IO_FIELDS, struct.unpack("<11I", bytes(uc.mem_read(IO_ADDRESS, 44))),
                      strict=True))
    if fields["status"] != 0:
        raise RuntimeError(f"emulated executor failed with status {fields['status']} "
                           f"(op {fields['op']})")
    out = bytes(uc.mem_read(output_at, fields["output_size"]))
    sizes: dict[tuple[int, int], int] = {}
    per_op = []
    for i in range(fields["n_ops"]):
        total = 0
        for key, times in blocks.get(i, {}).items():
            if key not in sizes:
                sizes[key] = _thumb_count(bytes(uc.mem_read(*key)))
            total += sizes[key] * times
            if by_block is not None:
                by_block[key[0]] = by_block.get(key[0], 0) + sizes[key] * times
        per_op.append(total)
    return out, per_op


def functions(elf_path: str, by_block: dict[int, int]) -> list[tuple[str, int]]:
    """Instructions per function (from the ELF's symbols, via the cross toolchain's nm),
    most first."""
    import bisect

    listing = subprocess.run(["arm-none-eabi-nm", "-n", "--defined-only", elf_path],
                             capture_output=True, text=True, check=True).stdout
    starts, names = [], []
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "tTwW":
            starts.append(int(parts[0], 16) & ~1)
            names.append(parts[2])
    totals: dict[str, int] = {}
    for address, n in by_block.items():
        i = bisect.bisect_right(starts, address) - 1
        name = names[i] if i >= 0 else "?"
        totals[name] = totals.get(name, 0) + n
    return sorted(totals.items(), key=lambda kv: -kv[1])
