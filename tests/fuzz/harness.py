"""Run model.bin files through every consumer and compare what they say.

* the numpy side: ``parse_model`` (the Python reader), ``PackedExecutor`` (prepare), a run on
  deterministic inputs (``fuzz_feeds``, mirrored by test_thinker's ``fuzz_input``);
* the C side: ``test_thinker --fuzz LIST`` (the ASan + UBSan build), many files per process,
  restarted after a crash or sanitizer abort;
* ``thinker profile`` and ``thinker report`` in-process: anything but exit code 0 or 1 (a user
  error) is a foreign exception.

A finding is a crash, a sanitizer report, a foreign exception (anything but a ThinkerError),
a reader disagreement (one side accepts what the other refuses) or a numpy/C mismatch.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import tempfile
import traceback
import zlib
from dataclasses import dataclass, field

import numpy as np

SANITIZER_MARKS = ("AddressSanitizer", "runtime error", "LeakSanitizer", "SEGV",
                   "UndefinedBehaviorSanitizer")
ARENA_LIMIT = 64 << 20  # test_thinker's FUZZ_MAX_BYTES


@dataclass
class Verdict:
    kind: str  # OK, REJECT, ERROR, SKIP, FOREIGN, CRASH
    detail: str = ""
    crcs: tuple[str, ...] = ()
    parsed: bool = False  # the Python reader accepted the file (prepare may still refuse it)


@dataclass
class Counts:
    files: int = 0
    accepted: int = 0
    rejected: int = 0
    crashes: int = 0
    sanitizer: int = 0
    foreign: int = 0
    disagreements: int = 0
    mismatches: int = 0
    findings: list[tuple[str, str, bytes]] = field(default_factory=list)  # (category, what, data)

    def add(self, other: Counts) -> None:
        for k in ("files", "accepted", "rejected", "crashes", "sanitizer", "foreign",
                  "disagreements", "mismatches"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.findings += other.findings

    @property
    def bad(self) -> int:
        return self.crashes + self.sanitizer + self.foreign + self.disagreements + \
            self.mismatches

    def line(self) -> str:
        return (f"files {self.files}, accepted {self.accepted}, rejected {self.rejected}, "
                f"crashes {self.crashes}, sanitizer reports {self.sanitizer}, foreign "
                f"exceptions {self.foreign}, disagreements {self.disagreements}, mismatches "
                f"{self.mismatches}")


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def fuzz_feeds(specs) -> dict[str, np.ndarray]:
    """The inputs test_thinker --fuzz gives: input i, element k from splitmix64(i*2**32 + k)."""
    feeds = {}
    for i, s in enumerate(specs):
        count = int(np.prod(s.shape, dtype=np.int64))
        r = _splitmix64((np.uint64(i) << np.uint64(32)) + np.arange(count, dtype=np.uint64))
        dtype = np.dtype(s.dtype)
        if dtype == np.float32:
            v = (((r % np.uint64(2001)).astype(np.int64) - 1000) / 64).astype(np.float32)
        elif s.exponent is None:
            small = (r % np.uint64(7)).astype(np.int64) - 3
            v = (small + 3 if dtype == np.uint8 else small).astype(dtype)
        else:
            v = r.view(np.int64).astype(dtype)  # the low bits
        feeds[s.name] = v.reshape(s.shape)
    return feeds


def python_verdict(data: bytes, where: str = "fuzz.bin") -> Verdict:
    from thinker.errors import ThinkerError
    from thinker.resource.reader import parse_model
    from thinker.runtime.packed import PackedExecutor

    model = None
    try:
        model = parse_model(data, where)
        exe = PackedExecutor(model)
        if sum(size for size, _ in model.arenas.values()) > ARENA_LIMIT:
            return Verdict("SKIP", "arenas", parsed=True)
    except ThinkerError as exc:
        return Verdict("REJECT", str(exc).split("\n")[0], parsed=model is not None)
    except Exception:
        return Verdict("FOREIGN", "load: " + traceback.format_exc(limit=-3))
    try:
        with np.errstate(all="ignore"):
            outputs = exe.run(fuzz_feeds(exe.inputs))
    except ThinkerError as exc:
        return Verdict("ERROR", str(exc).split("\n")[0], parsed=True)
    except Exception:
        return Verdict("FOREIGN", "run: " + traceback.format_exc(limit=-3))
    crcs = tuple(f"{zlib.crc32(np.ascontiguousarray(outputs[s.name]).tobytes()) & 0xFFFFFFFF:08x}"
                 for s in exe.outputs)
    return Verdict("OK", "", crcs, parsed=True)


def consumer_problems(path: str) -> list[str]:
    """``thinker profile`` and ``thinker report`` on one file: exit code 3 is an internal
    error (a foreign exception)."""
    from thinker.cli.main import main

    problems = []
    for argv in (["profile", path], ["report", path]):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse
                code = exc.code
        if code not in (0, 1):
            problems.append(f"thinker {argv[0]}: exit {code}: {err.getvalue()[-600:]}")
    return problems


def c_verdicts(binary: str, paths: list[str], timeout: float = 120.0) -> dict[str, Verdict]:
    """test_thinker --fuzz over ``paths``; a crash or sanitizer abort is charged to the file
    being run and the rest continue in a new process."""
    verdicts: dict[str, Verdict] = {}
    todo = list(paths)
    while todo:
        with tempfile.NamedTemporaryFile("w", suffix=".lst", delete=False) as f:
            f.write("\n".join(todo) + "\n")
            listing = f.name
        try:
            r = subprocess.run([binary, "--fuzz", listing], capture_output=True, text=True,
                               timeout=timeout, check=False,
                               env={**os.environ, "ASAN_OPTIONS": "detect_leaks=1"})
            stdout, stderr, code = r.stdout, r.stderr, r.returncode
        except subprocess.TimeoutExpired as exc:
            stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            stderr, code = "timeout", -1
        finally:
            os.unlink(listing)
        current = None
        for line in stdout.splitlines():
            word, _, rest = line.partition(" ")
            if word == "BEGIN":
                current = rest
            elif current is not None and word in ("OK", "REJECT", "ERROR", "SKIP"):
                if word == "OK":
                    verdicts[current] = Verdict("OK", "", tuple(rest.split()))
                else:
                    verdicts[current] = Verdict(word, rest)
                current = None
        sanitizer = any(m in stderr for m in SANITIZER_MARKS)
        if current is not None or code != 0 or sanitizer:
            if current is None:  # died outside a model (should not happen)
                current = next((p for p in todo if p not in verdicts), None)
            if current is None:
                break
            kind = "SANITIZER" if sanitizer else "CRASH"
            verdicts[current] = Verdict(kind, f"exit {code}: {stderr[-3000:]}")
        done = {p for p in todo if p in verdicts}
        todo = [p for p in todo if p not in done]
    return verdicts


def compare(py: Verdict, c: Verdict) -> tuple[str, str] | None:
    """(category, description) of a finding, or None when both sides agree."""
    if c.kind == "SANITIZER":
        return "sanitizer", c.detail
    if c.kind == "CRASH":
        return "crash", c.detail
    if py.kind == "FOREIGN":
        return "foreign", py.detail
    if c.kind == "SKIP" and c.detail.startswith("buffers"):
        return None  # C's own work buffers beyond the fuzzing limit: no verdict
    if py.kind == "SKIP" or c.kind == "SKIP":
        if py.kind == c.kind:
            return None
        return "disagreement", f"numpy {py.kind} {py.detail} / C {c.kind} {c.detail}"
    py_accepts, c_accepts = py.kind != "REJECT", c.kind != "REJECT"
    if py_accepts != c_accepts:
        return "disagreement", f"numpy {py.kind} {py.detail} / C {c.kind} {c.detail}"
    if py.kind != c.kind:
        return "disagreement", f"run: numpy {py.kind} {py.detail} / C {c.kind} {c.detail}"
    if py.kind == "OK" and py.crcs != c.crcs:
        return "mismatch", f"numpy {py.crcs} / C {c.crcs}"
    return None


def check_files(binary: str, files: list[tuple[str, bytes]], workdir: str,
                consumers: bool = True) -> Counts:
    """Every consumer on every (label, bytes); returns the counts and the findings."""
    counts = Counts()
    paths = []
    for i, (_, data) in enumerate(files):
        path = os.path.join(workdir, f"f{i:05d}.bin")
        with open(path, "wb") as f:
            f.write(data)
        paths.append(path)
    cv = c_verdicts(binary, paths)
    for (label, data), path in zip(files, paths, strict=True):
        counts.files += 1
        py = python_verdict(data, path)
        c = cv.get(path, Verdict("CRASH", "no verdict"))
        finding = compare(py, c)
        if consumers and finding is None and py.parsed:  # else both refuse it at once
            problems = consumer_problems(path)
            if problems:
                finding = ("foreign", problems[0])
        if finding is None:
            if py.kind == "REJECT":
                counts.rejected += 1
            else:
                counts.accepted += 1
            continue
        category, what = finding
        attr = {"sanitizer": "sanitizer", "crash": "crashes", "foreign": "foreign",
                "disagreement": "disagreements", "mismatch": "mismatches"}[category]
        setattr(counts, attr, getattr(counts, attr) + 1)
        counts.findings.append((category, f"{label}: {what}", data))
    for p in paths:
        with contextlib.suppress(OSError):
            os.unlink(p)
    return counts
