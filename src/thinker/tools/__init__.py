"""Stage-5 tools: validate (compare executors tensor by tensor), profile (cycle estimate from a
device cost model) and inspect (what is inside a model.bin)."""
