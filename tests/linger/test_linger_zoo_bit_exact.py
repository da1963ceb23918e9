"""For every zoo model, 8- and 4-bit weights: constrain -> float steps -> init -> QAT steps ->
eval -> export -> executor. Every tensor the executor computes equals, integer for integer,
what linger's eval forward computed for the same 64 random inputs."""

import numpy as np
import pytest
from linger_flow import assert_identical, run_zoo_flow

from linger import zoo

SIZES = {"mobilenet_v1_025": {"input_size": 32}}  # 96x96 in benchmarks, smaller here


@pytest.mark.parametrize("weight_bits", [8, 4])
@pytest.mark.parametrize("name", zoo.NAMES)
def test_executor_reproduces_every_tensor_of_the_linger_eval_forward(name, weight_bits,
                                                                      tmp_path):
    result = run_zoo_flow(name, weight_bits, str(tmp_path), **SIZES.get(name, {}))
    assert result.inputs.shape[0] == 64
    assert_identical(result)
    # the comparison is not vacuous: activations use their range, weights their bit width
    outputs = result.linger_values
    assert all(np.count_nonzero(v) > v.size // 4 for v in outputs.values())
