"""One exception hierarchy for every user-facing failure (design §9).

The CLI prints ``str(error)`` on one line and exits with the error's ``exit_code`` (1 for a
mistake in a model, file or input; 2 for a wrong command line); a traceback is only shown with
``--debug``. Messages name the file/node/tensor, the rule, the value and what to change.
Errors that list several problems (an ONNX file with three unsupported ops, a model that
breaks two device rules) carry them in ``problems``: the first line names the first problem
on its own, the full list follows, one problem per line. docs/errors.md lists every class.
"""

from __future__ import annotations

import re

# C0/C1 control characters (newline, ESC, ...), DEL, zero-width and bidirectional controls
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
NAME_LIMIT = 120


def _escape(match: re.Match) -> str:
    ch = match.group()
    return _ESCAPES.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")


def printable(text: object, limit: int | None = None) -> str:
    """``text`` safe to print on one terminal line: control characters (newlines, terminal
    escape codes, bidirectional overrides) become visible escapes such as ``\\n`` or
    ``\\x1b``; longer than ``limit`` characters, the middle is elided. Idempotent and cheap:
    names from models pass through here before they reach a message, a table or a terminal."""
    s = str(text)
    if _UNPRINTABLE.search(s):
        s = _UNPRINTABLE.sub(_escape, s)
    if limit is not None and len(s) > limit:
        keep = max(limit - 20, 8)
        s = f"{s[:keep // 2]}...({len(s):,} chars)...{s[-(keep // 2):]}"
    return s


def name(text: object) -> str:
    """A node/tensor/file name from a model, as it appears in messages (``printable``, at most
    ``NAME_LIMIT`` characters)."""
    return printable(text, NAME_LIMIT)


class ThinkerError(Exception):
    """Base class: a mistake in the user's model, device profile, files or inputs.

    ``ThinkerError(summary, problems=[...])`` builds a message whose first line is
    ``summary: <first problem>`` (self-contained) and, with several problems, lists them all
    on the following lines."""

    exit_code = 1

    def __init__(self, *args: object, problems: list[str] | tuple[str, ...] | None = None):
        self.problems = [str(p) for p in problems or ()]
        if self.problems and args:
            summary = str(args[0])
            first = f"{summary}: {self.problems[0]}"
            if len(self.problems) > 1:
                first = f"{summary}; first: {self.problems[0]}"
                args = (first + "\n" + "\n".join(f"  - {p}" for p in self.problems),
                        *args[1:])
            else:
                args = (first, *args[1:])
        super().__init__(*args)

    @property
    def summary(self) -> str:
        """The first line of the message."""
        return str(self).split("\n", 1)[0]


class ThinkerUsageError(ThinkerError):
    """The command line is wrong: an option value out of range, a missing argument."""

    exit_code = 2


class ThinkerModelError(ThinkerError):
    """The model itself is malformed, unsupported or breaks the arithmetic contract."""


class ThinkerDeviceError(ThinkerError):
    """The model breaks a limit of the target device profile."""


class ThinkerFormatError(ThinkerError):
    """A model.bin (or another serialized file) is corrupt, truncated or of an unknown version."""


class ThinkerInputError(ThinkerError):
    """Inputs given to an executor have the wrong name, size, shape or dtype."""


class ThinkerOutputError(ThinkerError):
    """An output path cannot be written: a folder, under a file, not writable, or one of the
    command's own inputs."""
