"""What every command shares: one-line errors on stderr with exit code 1 for user mistakes
(a traceback only with --debug), and writing files atomically (temp file, then rename)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable

import numpy as np

from thinker.errors import ThinkerError, ThinkerInputError

EXIT_USER_ERROR = 1


def run_command(main: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        return main(args)
    except ThinkerError as exc:
        if getattr(args, "debug", False):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader never sees a half-written file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_tensor_file(path: str, name: str, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """A model input from ``.npy`` (any batch size) or raw ``.bin`` (exactly one sample of the
    model's dtype and shape, little-endian, C order)."""
    if not os.path.isfile(path):
        raise ThinkerInputError(f"{path}: no such input file (for input '{name}')")
    if path.lower().endswith(".npy"):
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise ThinkerInputError(f"{path}: not a readable .npy file ({exc})") from None
    expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
    size = os.path.getsize(path)
    if size != expected:
        raise ThinkerInputError(
            f"{path}: {size:,} bytes, but input '{name}' is {np.dtype(dtype).name}"
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
