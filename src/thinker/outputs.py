"""Writing files so that nothing is lost (design §9).

* ``check_outputs`` / ``check_folder``: before any work, every path a command will write is
  checked: not a folder, not under a file, in a writable folder, not one of the command's own
  inputs (compared as real paths), not twice the same file.
* ``write_files`` / ``atomic_write``: each file is written to a temporary file in its own
  folder, then renamed over the target, so a reader never sees a half-written file; several
  files are all written first and only then renamed (all or nothing); on failure the
  temporary files are removed.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable, Sequence

from thinker.errors import ThinkerOutputError, name

Labelled = tuple[str, str]  # (what, path), e.g. ("-o", "model.bin") or ("input 'x'", "x.bin")


def same_file(a: str, b: str) -> bool:
    """``a`` and ``b`` are the same file (hard links, symlinks and ``..`` resolved)."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def _nearest_existing(path: str) -> str:
    current = os.path.abspath(path)
    while not os.path.lexists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def _check_parent(what: str, path: str) -> None:
    """The folder that will hold ``path`` exists or can be created, and is writable."""
    folder = os.path.dirname(os.path.abspath(path))
    existing = _nearest_existing(folder)
    if not os.path.isdir(existing):
        raise ThinkerOutputError(f"{what} {name(path)}: {name(existing)} is a file, not a "
                                 "folder; choose a path in a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ThinkerOutputError(f"{what} {name(path)}: folder {name(existing)} is not "
                                 "writable; choose another folder")


def check_outputs(outputs: Sequence[Labelled], inputs: Iterable[Labelled] = ()) -> None:
    """Raise ThinkerOutputError for the first output path that cannot be written, or that
    would overwrite an input or another output of the same command."""
    inputs = [(w, p) for w, p in inputs if p]
    seen: list[Labelled] = []
    for what, path in outputs:
        if not path:
            raise ThinkerOutputError(f"{what}: empty file name; give a file name")
        if path.endswith(("/", os.sep)) or os.path.isdir(path):
            raise ThinkerOutputError(f"{what} {name(path)}: is a folder; give a file name "
                                     "(in that folder or elsewhere)")
        _check_parent(what, path)
        for in_what, in_path in inputs:
            if same_file(path, in_path):
                raise ThinkerOutputError(
                    f"{what} {name(path)}: is also this command's {in_what}; writing it would "
                    "destroy the input: choose another output name")
        for out_what, out_path in seen:
            if same_file(path, out_path):
                raise ThinkerOutputError(f"{what} {name(path)}: is also {out_what}; give each "
                                         "output its own file name")
        seen.append((what, path))


def check_folder(what: str, path: str, inputs: Iterable[Labelled] = ()) -> None:
    """A folder the command will create files in: a folder (or creatable), writable, and not
    an input file."""
    for in_what, in_path in inputs:
        if in_path and same_file(path, in_path):
            raise ThinkerOutputError(f"{what} {name(path)}: is this command's {in_what}; "
                                     "choose another folder")
    if os.path.lexists(path) and not os.path.isdir(path):
        raise ThinkerOutputError(f"{what} {name(path)}: is a file, not a folder; give a "
                                 "folder name (it is created if missing)")
    existing = _nearest_existing(path)
    if not os.path.isdir(existing):
        raise ThinkerOutputError(f"{what} {name(path)}: {name(existing)} is a file, not a "
                                 "folder; choose another folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ThinkerOutputError(f"{what} {name(path)}: folder {name(existing)} is not "
                                 "writable; choose another folder")


def _special(path: str) -> bool:
    """An existing target that is not a regular file (/dev/stdout, a FIFO): written in place,
    never replaced by a rename."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _temp_for(path: str, data: bytes) -> str:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)[:40]}.", suffix=".tmp",
                               dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
    except BaseException:
        _remove(tmp)
        raise
    return tmp


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def write_files(items: Sequence[tuple[str, bytes]]) -> None:
    """Write every ``(path, data)``: all to temporary files first, then rename them all. On
    failure the temporary files are removed and no target has changed (unless a rename
    itself fails half-way, which needs the folder to change under us)."""
    temps: list[tuple[str, str]] = []
    direct: list[tuple[str, bytes]] = []
    current, renamed = "", 0
    try:
        for path, data in items:
            current = path
            if _special(path):
                direct.append((path, data))
            else:
                temps.append((_temp_for(path, data), path))
        for tmp, path in temps:
            current = path
            os.replace(tmp, path)
            renamed += 1
        for path, data in direct:
            current = path
            with open(path, "wb") as f:
                f.write(data)
    except OSError as exc:
        for tmp, _ in temps:
            _remove(tmp)
        reason = exc.strerror or str(exc)
        done = "no output file was changed" if not renamed else \
            f"{renamed} of {len(items)} output files were already replaced"
        raise ThinkerOutputError(f"{name(current)}: cannot write ({reason}); {done}") from None
    except BaseException:
        for tmp, _ in temps:
            _remove(tmp)
        raise


def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader never sees a half-written file."""
    write_files([(path, data)])


__all__ = ["atomic_write", "check_folder", "check_outputs", "same_file", "write_files"]
