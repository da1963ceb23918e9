# Two commands set everything up on a fresh machine:  make demo   and   make test
# Each target creates .venv and installs what it needs when missing.

PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip --disable-pip-version-check -q
STAMP   = $(VENV)/.installed
SHARED ?= ../shared/data

.PHONY: setup demo demo-stream test fuzz bench lint clean executor

setup: $(STAMP) executor

# The C executor's host library (used by thinker.load(..., backend="c")), when a C compiler
# is present.
executor:
	@if [ -f executor/Makefile ] && command -v $${CC:-cc} >/dev/null 2>&1; then \
		$(MAKE) -C executor; else echo "executor: skipped (no executor/Makefile or C compiler)"; fi

# torch is pinned and installed first so the CPU build on local disk is used and nothing
# resolves a multi-GB CUDA build; then the project with its extras (editable).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[train,dev,bench]'
	touch $(STAMP)

demo: $(STAMP) executor
	$(PY) examples/digits/demo.py

# Streaming keyword spotting: the CRNN trained briefly on synthetic features, packed with
# tpacker --isstream, run frame by frame through the C executor (docs/streaming.md).
demo-stream: $(STAMP) executor
	$(PY) examples/kws_stream/demo.py

test: $(STAMP) executor
	THINKER_SHARED_DATA=$(SHARED) $(PY) -m pytest

# The fuzzers of tests/fuzz for FUZZ_MINUTES (make test runs them for about a minute): model.bin
# mutants and perturbed ONNX models through tpacker, both readers, both executors (C under ASan
# + UBSan), thinker profile / report. Prints the counts; findings are kept in tests/fuzz/regressions.
# Then FUZZ_M4_MODELS random conv models on the emulated Cortex-M4 (numpy = host C = emulator, no
# write outside the plan; make test runs 16), FUZZ_HOST_MODELS random conv/depthwise models on
# the numpy executor's compiled kernels against its numpy kernels (make test runs 40),
# FUZZ_C_HOST_MODELS random conv models on the host C executor's compiled kernels against the
# numpy kernels (make test runs 24), and FUZZ_HOST_BOUNDS_JOBS jobs per seed of those kernels
# against guard pages (make test runs 100).
FUZZ_MINUTES ?= 10
FUZZ_M4_MODELS ?= 1000
FUZZ_HOST_MODELS ?= 3000
FUZZ_C_HOST_MODELS ?= 1000
FUZZ_HOST_BOUNDS_JOBS ?= 5000
fuzz: $(STAMP)
	$(MAKE) -C executor sanitize
	$(PY) tests/fuzz/run.py --minutes $(FUZZ_MINUTES) $(if $(FUZZ_SEED),--seed $(FUZZ_SEED)) \
		--save tests/fuzz/regressions
	THINKER_SHARED_DATA=$(SHARED) THINKER_M4_RANDOM_MODELS=$(FUZZ_M4_MODELS) $(PY) -m pytest -q \
		tests/c_executor/test_c_m4_random_convs.py
	THINKER_SHARED_DATA=$(SHARED) THINKER_HOST_RANDOM_MODELS=$(FUZZ_HOST_MODELS) \
		THINKER_C_HOST_RANDOM_MODELS=$(FUZZ_C_HOST_MODELS) \
		THINKER_HOST_BOUNDS_JOBS=$(FUZZ_HOST_BOUNDS_JOBS) $(PY) -m pytest -q \
		tests/c_executor/test_host_kernels.py tests/c_executor/test_c_host_kernels.py \
		tests/c_executor/test_host_kernels_bounds.py

# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE may be pinned on this kind of machine for old OpenBLAS
# builds; numpy's current one picks its own kernels (printed by the benchmark), so the speed
# comparison runs without the pin, in that command alone.
bench: $(STAMP) executor
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) benchmarks/bench_executor.py --data $(SHARED)
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) benchmarks/bench_executor.py --data $(SHARED) \
		--avxvnni --threads 1 --no-rss
	$(PY) benchmarks/bench_memory.py --data $(SHARED)
	$(PY) benchmarks/bench_c.py --data $(SHARED)
	$(PY) benchmarks/bench_m4.py --data $(SHARED)
	$(PY) benchmarks/bench_stream.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples

clean:
	rm -rf $(VENV) workspace .pytest_cache
