"""The fuzzers, bounded by time or count (seeded): ``make test`` runs them for about a minute
(tests/fuzz/test_fuzz.py), ``make fuzz`` for ten minutes or more:

    python tests/fuzz/run.py --minutes 10 [--seed N] [--save tests/fuzz/regressions]

Each round packs nothing new for the model.bin mutator (its seeds are packed once), mutates
the seeds (mutate.py) and checks every consumer (harness.py); the ONNX attribute fuzzer
(onnx_fuzz.py) perturbs the seed ONNX models, packs them with tpacker and checks what it
accepts the same way. Prints the counts; exit status 1 on any finding (crash, sanitizer
report, foreign exception, reader disagreement, numpy/C mismatch), each saved with --save.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import harness  # noqa: E402
import mutate  # noqa: E402
import onnx_fuzz  # noqa: E402
import seeds as seed_corpus  # noqa: E402

from thinker.runtime.c_backend import host_kernels  # noqa: E402

REGRESSIONS = os.path.join(HERE, "regressions")


def ensure_sanitize_build() -> str:
    """The ASan + UBSan test_thinker, up to date (make -C executor sanitize: incremental)."""
    import subprocess

    r = subprocess.run(["make", "-C", seed_corpus.EXECUTOR, "sanitize"], capture_output=True,
                       text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"make -C executor sanitize failed:\n{r.stdout}\n{r.stderr}")
    return seed_corpus.SANITIZE_BINARY


def mutation_round(rng: random.Random, binary: str, per_seed: int, workdir: str,
                   consumers: bool = True) -> harness.Counts:
    """``per_seed`` model.bin mutants of every seed model, through every consumer."""
    files = []
    for name, data in sorted(seed_corpus.seeds().items()):
        files += [(f"{name}:{label}", blob) for label, blob in mutate.mutants(data, rng, per_seed)]
    return harness.check_files(binary, files, workdir, consumers)


def onnx_round(rng: random.Random, binary: str, count: int, workdir: str) -> harness.Counts:
    """``count`` perturbed ONNX seed models through tpacker, then everything it accepts
    through every consumer."""
    counts = harness.Counts()
    packed = []
    for label, model, platform, keep_quant in onnx_fuzz.onnx_cases(
            rng, seed_corpus.seed_models(), count):
        data, finding = onnx_fuzz.pack_verdict(model, platform, keep_quant, workdir)
        if finding is not None:
            counts.files += 1
            counts.foreign += 1
            counts.findings.append(("foreign", f"{label}: {finding}",
                                    model.SerializeToString()))
        elif data is None:
            counts.files += 1
            counts.rejected += 1  # tpacker refused it with a ThinkerError
        else:
            packed.append((f"{label} [tpacker accepted]", data))
    checked = harness.check_files(binary, packed, workdir, consumers=False)
    # tpacker accepted these: a reader refusing one is a disagreement
    for label, data in packed:
        py = harness.python_verdict(data)
        if py.kind == "REJECT":
            checked.disagreements += 1
            checked.rejected -= 1
            checked.findings.append(("disagreement", f"{label}: tpacker accepted, numpy reader "
                                                     f"refused: {py.detail}", data))
    counts.add(checked)
    return counts


def replay(binary: str, workdir: str) -> harness.Counts:
    """Every kept crasher / disagreement: model.bin files (.bin) through every consumer,
    ONNX files (.onnx) through tpacker first."""
    import onnx

    counts = harness.Counts()
    if not os.path.isdir(REGRESSIONS):
        return counts
    names = sorted(os.listdir(REGRESSIONS))
    bins = []
    for name in names:
        path = os.path.join(REGRESSIONS, name)
        if name.endswith(".bin"):
            with open(path, "rb") as f:
                bins.append((name, f.read()))
        elif name.endswith(".onnx"):
            platform, keep_quant = _packing_options(path + ".txt")
            data, finding = onnx_fuzz.pack_verdict(onnx.load(path), platform, keep_quant,
                                                   workdir)
            counts.files += 1
            if finding is not None:
                counts.foreign += 1
                counts.findings.append(("foreign", f"{name}: {finding}", b""))
            elif data is None:
                counts.rejected += 1
            else:
                bins.append((name + " [packed]", data))
    counts.add(harness.check_files(binary, bins, workdir))
    return counts


def _packing_options(description: str) -> tuple[str, bool]:
    """The device profile and --keep_quant an ONNX regression was packed with (the first lines
    of its .txt: ``platform: NAME``, ``keep_quant: 0|1``)."""
    platform, keep_quant = "cortex-m", False
    if os.path.exists(description):
        with open(description, encoding="utf-8") as f:
            for line in f.read().splitlines()[:2]:
                key, _, value = line.partition(": ")
                if key == "platform":
                    platform = value.strip()
                elif key == "keep_quant":
                    keep_quant = value.strip() == "1"
    return platform, keep_quant


def save_findings(counts: harness.Counts, folder: str) -> list[str]:
    """Each finding as a regression file (model.bin, or the ONNX model tpacker crashed on)
    with a .txt describing it."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    models = seed_corpus.seed_models()
    for category, what, data in counts.findings:
        if not data:
            continue
        onnx_model = data[:8] != b"THINKER\0"
        digest = hashlib.sha1(data).hexdigest()[:12]
        path = os.path.join(folder, f"{category}-{digest}{'.onnx' if onnx_model else '.bin'}")
        with open(path, "wb") as f:
            f.write(data)
        head = ""
        if onnx_model and what.split(":", 1)[0] in models:
            _, platform, keep_quant = models[what.split(":", 1)[0]]
            head = f"platform: {platform}\nkeep_quant: {int(keep_quant)}\n"
        with open(path + ".txt", "w", encoding="utf-8") as f:
            f.write(head + what[:4000] + "\n")
        paths.append(path)
    return paths


def fuzz(seconds: float, seed: int, per_seed: int = 40, onnx_count: int = 200,
         log=print) -> harness.Counts:
    """Alternate mutation and ONNX rounds until ``seconds`` have passed (at least one of each)."""
    binary = ensure_sanitize_build()
    rng = random.Random(seed)
    total = harness.Counts()
    start = time.monotonic()
    rounds = 0
    with tempfile.TemporaryDirectory(prefix="thinker-fuzz-") as workdir:
        while rounds < 2 or time.monotonic() - start < seconds:
            # every other pair of rounds with the compiled host kernels off, so both of the
            # executors' kernel sets meet the mutants
            compiled = rounds // 2 % 2 == 0
            with host_kernels(compiled):
                if rounds % 2 == 0:
                    counts = mutation_round(rng, binary, per_seed, workdir)
                    kind = "model.bin mutants"
                else:
                    counts = onnx_round(rng, binary, onnx_count, workdir)
                    kind = "ONNX attribute perturbations"
            total.add(counts)
            rounds += 1
            kernels = "compiled" if compiled else "portable"
            log(f"round {rounds} ({kind}, {kernels} kernels, {time.monotonic() - start:.0f} s): "
                f"{counts.line()}")
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=None, help="default: the time")
    parser.add_argument("--save", default=None, help="folder for findings (e.g. "
                        "tests/fuzz/regressions)")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time())
    print(f"thinker fuzz: seed {seed}, {args.minutes:g} minutes", flush=True)
    binary = ensure_sanitize_build()
    with tempfile.TemporaryDirectory(prefix="thinker-fuzz-") as workdir:
        kept = replay(binary, workdir)
    print(f"regressions: {kept.line()}", flush=True)
    total = fuzz(args.minutes * 60, seed, log=lambda s: print(s, flush=True))
    total.add(kept)
    print(f"total: {total.line()}")
    for category, what, _ in total.findings[:50]:
        print(f"  {category}: {what[:500]}")
    if args.save and total.findings:
        for path in save_findings(total, args.save):
            print(f"  saved {path}")
    return 1 if total.bad else 0


if __name__ == "__main__":
    sys.exit(main())
