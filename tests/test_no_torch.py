"""The deployment side must import and run with torch absent (design §2)."""

import subprocess
import sys

CODE = """
import sys
sys.modules['torch'] = None  # any 'import torch' now raises ImportError
import numpy as np
import thinker, thinker.qmath, thinker.graph, thinker.ops, thinker.runtime, thinker.cli.main
from onnx import helper, TensorProto
g = helper.make_graph([helper.make_node('Relu', ['x'], ['y'])], 'g',
                      [helper.make_tensor_value_info('x', TensorProto.INT8, [1, 2])],
                      [helper.make_tensor_value_info('y', TensorProto.INT8, [1, 2])])
from thinker.graph import import_model
m = thinker.load(import_model(helper.make_model(g)))
assert m.run({'x': np.array([[-1, 1]], np.int8)})['y'].tolist() == [[0, 1]]
assert not any(name == 'torch' or name.startswith('torch.') for name in sys.modules
               if sys.modules[name] is not None)
print('ok')
"""


def test_thinker_imports_and_runs_without_torch():
    r = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"
