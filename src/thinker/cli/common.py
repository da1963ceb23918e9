"""What every command shares (design §9, docs/errors.md):

* exit codes: 0 success, 1 a mistake in a model, file or input (one line on stderr naming the
  file/node/tensor, the rule and the fix), 2 a wrong command line (argparse, option values),
  3 an internal error ("please report"), 130 interrupted; ``--debug`` adds the traceback;
* every message passes through ``thinker.errors.printable`` (names from models may hold
  newlines or terminal escape codes);
* output paths are checked before any work, and written atomically (``thinker.outputs``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Callable

import numpy as np

from thinker.errors import ThinkerError, ThinkerInputError, name, printable
from thinker.outputs import atomic_write, check_folder, check_outputs, write_files

EXIT_USER_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130


def error_lines(exc: BaseException) -> list[str]:
    """The lines printed for an error: the first names the problem on its own; an error that
    lists several problems adds one line per problem. Every line is printable."""
    if isinstance(exc, ThinkerError) and len(exc.problems) > 1:
        return [printable(exc.summary)] + [f"  - {printable(p)}" for p in exc.problems]
    text = str(exc)
    first, _, rest = text.partition("\n")
    return [printable(first)] + [f"  {printable(line.strip())}" for line in rest.splitlines()
                                 if line.strip()]


def _print_error(lines: list[str]) -> None:
    print("error: " + "\n".join(lines), file=sys.stderr, flush=True)


def run_command(main: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command's ``main``; turn every exception into a message and an exit code."""
    try:
        return main(args)
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            raise
        if isinstance(exc, KeyboardInterrupt):
            print("interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        if isinstance(exc, BrokenPipeError):  # e.g. `thinker report m.bin | head -1`
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_USER_ERROR
        code, lines = describe_failure(exc)
        if getattr(args, "debug", False):
            traceback.print_exception(exc)
        _print_error(lines)
        return code


def describe_failure(exc: BaseException) -> tuple[int, list[str]]:
    """Exit code and message lines for an exception that ended a command."""
    if isinstance(exc, ThinkerError):
        return exc.exit_code, error_lines(exc)
    too_big = isinstance(exc, ValueError) and any(
        text in str(exc) for text in ("array is too big", "Maximum allowed dimension",
                                      "Maximum allowed size"))  # numpy: beyond the address space
    if isinstance(exc, MemoryError) or too_big:
        detail = printable(str(exc).strip() or "an allocation failed", 300)
        return EXIT_USER_ERROR, [f"out of memory ({detail}); use a smaller batch (fewer samples "
                                 "in the .npy input) or a smaller model"]
    if isinstance(exc, OSError):  # a file the user named: permissions, disk full, ...
        where = f"{name(exc.filename)}: " if exc.filename else ""
        return EXIT_USER_ERROR, [f"{where}{printable(exc.strerror or exc, 300)}"]
    detail = printable(str(exc), 300)
    return EXIT_INTERNAL, [f"internal error, please report: {type(exc).__name__}: {detail} "
                           "(run with --debug for the traceback)"]


# ---- argparse value types (a bad value exits with code 2 and names the option) ------------


def int_at_least(minimum: int, what: str = "") -> Callable[[str], int]:
    """An argparse ``type`` accepting integers >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{printable(text, 40)}' is not an integer") \
                from None
        if value < minimum:
            hint = f" ({what})" if what else ""
            raise argparse.ArgumentTypeError(f"must be at least {minimum}{hint}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


# ---- files -------------------------------------------------------------------------------


def read_tensor_file(path: str, name_: str, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """A model input from ``.npy`` (any batch size) or raw ``.bin`` (exactly one sample of the
    model's dtype and shape, little-endian, C order)."""
    where, tensor = name(path), name(name_)
    if os.path.isdir(path):
        raise ThinkerInputError(f"{where}: is a folder, not an input file (for input "
                                f"'{tensor}')")
    if not os.path.isfile(path):
        raise ThinkerInputError(f"{where}: no such input file (for input '{tensor}')")
    if path.lower().endswith(".npy"):
        try:
            value = np.load(path, allow_pickle=False)
        except (ValueError, EOFError, OSError) as exc:
            raise ThinkerInputError(f"{where}: not a readable .npy file "
                                    f"({printable(exc, 200)})") from None
        if not isinstance(value, np.ndarray):
            raise ThinkerInputError(f"{where}: holds several arrays (.npz); save one array "
                                    "with np.save")
        return value
    expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
    size = os.path.getsize(path)
    if size != expected:
        raise ThinkerInputError(
            f"{where}: {size:,} bytes, but input '{tensor}' is {np.dtype(dtype).name}"
            f"{list(shape)} = {expected:,} bytes; write exactly that many (or use .npy for a "
            "batch)"
        )
    return np.fromfile(path, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype).reshape(shape)


def tensor_file_bytes(path: str, value: np.ndarray) -> bytes:
    """``.npy`` or raw little-endian bytes, by the path's extension."""
    if path.lower().endswith(".npy"):
        import io

        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(value))
        return buf.getvalue()
    arr = np.ascontiguousarray(value)
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


__all__ = ["EXIT_INTERNAL", "EXIT_USAGE", "EXIT_USER_ERROR", "atomic_write", "check_folder",
           "check_outputs", "error_lines", "int_at_least", "read_tensor_file", "run_command",
           "tensor_file_bytes", "write_files"]
