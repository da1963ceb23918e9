"""The fuzzers, bounded and seeded (make fuzz runs the same for >= 10 minutes): model.bin
mutants with the CRC recomputed and perturbed ONNX models through tpacker, every result
through the Python reader, the numpy executor, thinker profile / report and the ASan + UBSan
C executor. Any crash, sanitizer report, foreign exception, reader disagreement or numpy/C
mismatch fails; the findings kept in tests/fuzz/regressions replay here."""

from __future__ import annotations

import os
import random
import re
import shutil
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import run  # noqa: E402
import seeds as seed_corpus  # noqa: E402

SEED = 20261127


@pytest.fixture(scope="module")
def binary() -> str:
    if shutil.which(os.environ.get("CC", "cc")) is None or shutil.which("make") is None:
        pytest.skip("no C compiler or make: the sanitizer build cannot be made here")
    return run.ensure_sanitize_build()


def _report(counts: harness.Counts) -> str:
    lines = [counts.line()]
    lines += [f"  {category}: {what[:800]}" for category, what, _ in counts.findings[:10]]
    return "\n".join(lines)


def test_every_seed_model_is_accepted_and_runs_identically(binary, tmp_path):
    files = sorted(seed_corpus.seeds().items())
    counts = harness.check_files(binary, files, str(tmp_path))
    assert counts.bad == 0, _report(counts)
    assert counts.accepted == len(files) and counts.rejected == 0, _report(counts)


def test_model_bin_mutants_agree_everywhere(binary, tmp_path):
    counts = run.mutation_round(random.Random(SEED), binary, 250, str(tmp_path))
    assert counts.bad == 0, _report(counts)
    assert counts.accepted > 500 and counts.rejected > 500  # the mutants reach both outcomes


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "portable"])
def test_perturbed_onnx_models_pack_or_fail_cleanly_and_agree(binary, compiled, tmp_path):
    """Half the models with the compiled host kernels (where the CPU has them), half without:
    perturbed geometry reaches both kernel sets of both executors."""
    from thinker.runtime.c_backend import host_kernels

    with host_kernels(compiled):
        counts = run.onnx_round(random.Random(SEED + 1 + compiled), binary, 750, str(tmp_path))
    assert counts.bad == 0, _report(counts)
    assert counts.accepted > 150 and counts.rejected > 150


def test_kept_regressions_replay_cleanly(binary, tmp_path):
    kept = [n for n in os.listdir(run.REGRESSIONS) if n.endswith((".bin", ".onnx"))]
    counts = run.replay(binary, str(tmp_path))
    assert counts.bad == 0, _report(counts)
    assert counts.files == len(kept) > 20
    for name in kept:  # each says what it found
        assert os.path.exists(os.path.join(run.REGRESSIONS, name + ".txt")), name


def test_the_c_rule_tables_are_the_python_rules():
    """executor/src/rules.c copies the attribute types of thinker.resource.rules and
    executor/src/op_table.c the input counts and the quant_mode support of the numpy ops: the
    copies must stay equal."""
    from thinker.ops import OPS
    from thinker.ops.rounding import MODE_OPS
    from thinker.resource import rules

    with open(os.path.join(seed_corpus.EXECUTOR, "src", "rules.c"), encoding="utf-8") as f:
        source = f.read()
    kinds = {"KIND_INT": {rules.INT}, "KIND_INTS": {rules.INTS}, "KIND_STRING": {rules.STRING},
             "KIND_NUMBER": {rules.INT, rules.FLOAT}}
    lists = {name: re.findall(r'"(\w+)"', keys)
             for name, keys in re.findall(r'char \*const (k_\w+_attrs)\[\] = \{([^}]*)\};', source)}
    groups = re.findall(r'GROUP\((k_\w+_attrs), (KIND_\w+), (\d+)\)', source)
    c_attrs = {key: (kinds[kind], int(count) or None)
               for name, kind, count in groups for key in lists[name]}
    assert len(c_attrs) == sum(map(len, lists.values()))  # no key in two lists
    py_attrs = {key: (set(allowed), exact) for key, (allowed, exact) in rules.ATTR_TYPES.items()}
    assert c_attrs == py_attrs
    with open(os.path.join(seed_corpus.EXECUTOR, "src", "op_table.c"), encoding="utf-8") as f:
        table = f.read()
    entries = re.findall(r'ENTRY\("(\w+)", \w+, (\d+), (\d+|ANY), ([^,]+), ([^,]+), \w+\)', table)
    c_inputs = {t: (int(lo), 65536 if hi == "ANY" else int(hi),
                    1 << int(opt.split("<<")[1]) if "<<" in opt else int(opt))
                for t, lo, hi, opt, _ in entries}
    py_inputs = {t: (op.min_inputs, op.max_inputs, sum(1 << i for i in op.optional_inputs))
                 for t, op in OPS.items()}
    assert c_inputs == py_inputs
    assert {t for t, *_, flags in entries if "R_MODE" in flags} == set(MODE_OPS)
