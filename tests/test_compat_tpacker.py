"""tpacker takes the original LISTENAI tpacker's command lines and config files verbatim, with
the original's meaning (tools/tpacker/argument_parser.py, docs/thinker_packer.md); original
flags thinker does not implement are refused or noted, never silently ignored."""

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest

import thinker
from packing_models import single_conv_model, small_cnn
from thinker.resource import format as fmt
from thinker.resource import read_model

TPACKER = os.path.join(os.path.dirname(sys.executable), "tpacker")


def tpacker(*args, cwd):
    return subprocess.run([TPACKER, *map(str, args)], capture_output=True, text=True, cwd=cwd)


@pytest.fixture
def cnn(tmp_path):
    onnx.save(small_cnn(), tmp_path / "cnn.onnx")
    return tmp_path


def memories(path) -> dict[str, int]:
    return {t.name: t.memory for t in read_model(str(path)).tensors}


def test_dump_takes_a_boolean_value(cnn):
    r = tpacker("-g", "cnn.onnx", "-o", "a.bin", "-d", "True", cwd=cnn)
    assert r.returncode == 0, r.stderr
    assert (cnn / "workspace" / "cnn" / "00_load.onnx").exists()
    r = tpacker("-g", "cnn.onnx", "-o", "b.bin", "-d", "False", "--workspace", "ws2", cwd=cnn)
    assert r.returncode == 0, r.stderr
    assert not (cnn / "ws2" / "cnn" / "00_load.onnx").exists()
    r = tpacker("-g", "cnn.onnx", "-o", "c.bin", "-d", "maybe", cwd=cnn)
    assert r.returncode == 2 and "'maybe' is not a boolean" in r.stderr


def test_c_is_dynamic_shape_with_the_originals_forms(tmp_path):
    onnx.save(single_conv_model(4, 2, 3, 16), tmp_path / "conv.onnx")
    r = tpacker("-g", "conv.onnx", "-o", "c.bin", "-c", "x=1:9:2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = tpacker("-g", "conv.onnx", "-o", "d.bin", "--dynamic_shape", "x=1:9:2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "c.bin").read_bytes() == (tmp_path / "d.bin").read_bytes()
    # NAME=MAX means 1..MAX, NAME=MIN:MAX factor 1 (the original's parse_shape_config)
    r = tpacker("-g", "conv.onnx", "-o", "e.bin", "-c", "x=8", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    packed = read_model(str(tmp_path / "e.bin"))
    assert [(axis, lo, hi, f) for _, axis, lo, hi, f in packed.dynamic_shapes] == \
        [(3, 1, 8, 1)]  # the last axis by default, planned at MAX


def test_s_remove_quantdequant_keeps_the_edge_quant(cnn):
    r = tpacker("-g", "cnn.onnx", "-o", "s.bin", "-s", "Remove_QuantDequant", cwd=cnn)
    assert r.returncode == 0, r.stderr
    r = tpacker("-g", "cnn.onnx", "-o", "k.bin", "--keep_quant", cwd=cnn)
    assert r.returncode == 0, r.stderr
    assert (cnn / "s.bin").read_bytes() == (cnn / "k.bin").read_bytes()
    m = thinker.load(cnn / "s.bin")
    assert m.inputs[0].dtype == np.float32  # float in: the Quant stayed


def test_s_takes_the_originals_other_methods(cnn):
    r = tpacker("-g", "cnn.onnx", "-o", "f.bin", "-s", "CR_fusion", cwd=cnn)
    assert r.returncode == 0, r.stderr
    assert "Relu" in [op.op_type for op in read_model(str(cnn / "f.bin")).to_graph().nodes]
    r = tpacker("-g", "cnn.onnx", "-o", "g.bin", "-s",
                "Remove_Slice,Transpose_to_Reshape", cwd=cnn)
    assert r.returncode == 0, r.stderr
    assert "[skipped] drop_identity" in r.stdout.replace("\x1b[33m", "").replace("\x1b[0m", "")
    r = tpacker("-g", "cnn.onnx", "-s", "Fuse_Everything", cwd=cnn)
    assert r.returncode == 2 and "Remove_QuantDequant" in r.stderr and "--skip" in r.stderr


def test_inputs_and_outputs_comma_separated(cnn):
    r = tpacker("-g", "cnn.onnx", "-o", "cut.bin", "--inputs", "p1,r1", "--outputs", "a1",
                cwd=cnn)
    assert r.returncode == 0, r.stderr
    packed = thinker.load(cnn / "cut.bin")
    assert [s.name for s in packed.inputs] == ["p1", "r1"]
    assert [s.name for s in packed.outputs] == ["a1"]


@pytest.mark.parametrize("spelling", ["venusa", "VENUSA", "VenusA"])
def test_platform_in_any_case(cnn, spelling):
    r = tpacker("-g", "cnn.onnx", "-o", "p.bin", "-p", spelling, cwd=cnn)
    assert r.returncode == 0, r.stderr
    r2 = tpacker("-g", "cnn.onnx", "-o", "q.bin", "-p", "venusA", cwd=cnn)
    assert r2.returncode == 0, r2.stderr
    assert (cnn / "p.bin").read_bytes() == (cnn / "q.bin").read_bytes()


def test_memory_with_the_originals_names(cnn):
    r = tpacker("-g", "cnn.onnx", "-o", "m.bin", "-m", "inputs[0]:psram", "-m", "params:psram",
                "-m", "a1:share-mem", cwd=cnn)
    assert r.returncode == 0, r.stderr
    mem = memories(cnn / "m.bin")
    packed = read_model(str(cnn / "m.bin"))
    first_input = packed.tensors[packed.inputs[0]].name
    assert mem[first_input] == fmt.MEM_PSRAM
    assert mem["a1"] == fmt.MEM_SRAM
    constants = [t for t in packed.tensors if t.is_constant]
    assert constants and all(t.memory == fmt.MEM_PSRAM for t in constants)
    # comma-separated, as the original's _parse_memory; params:flash
    r = tpacker("-g", "cnn.onnx", "-o", "n.bin", "-m", "inputs[0]:PSRAM,params:flash", cwd=cnn)
    assert r.returncode == 0, r.stderr
    packed = read_model(str(cnn / "n.bin"))
    assert all(t.memory == fmt.MEM_FLASH for t in packed.tensors if t.is_constant)
    r = tpacker("-g", "cnn.onnx", "-m", "inputs[3]:psram", cwd=cnn)
    assert r.returncode == 1 and "the model has 1 inputs" in r.stderr


def test_the_originals_documented_memory_example(cnn):
    """docs/thinker_packer.md, example 5, verbatim (model name aside)."""
    r = tpacker("-g", "cnn.onnx", "--memory", "inputs[0]:share-memory", "--threshold1",
                "1048576", "--ramsize", "393216", cwd=cnn)
    assert r.returncode == 0, r.stderr
    assert "--threshold1 is accepted for compatibility" in r.stdout


def test_flags_without_an_implementation_are_refused_or_noted(cnn):
    r = tpacker("-g", "cnn.onnx", "--isstream", "split_x", cwd=cnn)
    assert r.returncode == 2 and "--isstream" in r.stderr and "split_h or split_w" in r.stderr
    # a model that mixes frames cannot stream: refused naming the op, nothing written
    r = tpacker("-g", "cnn.onnx", "--isstream", "split_w", cwd=cnn)
    assert r.returncode == 1 and "cannot run on a stream" in r.stderr
    assert not (cnn / "model.bin").exists()
    r = tpacker("-g", "cnn.onnx", "--dma_prefetch", "False", cwd=cnn)
    assert r.returncode == 0, r.stderr
    assert "note: --dma_prefetch False is accepted for compatibility and changes nothing" \
        in r.stdout


ORIGINAL_CONFIG = {  # what the original's export_configuration writes
    "Basic Configuration": {
        "graph_path": {"value": "cnn.onnx", "comment": "Path of ONNX graph file"},
        "output_path": {"value": "from_config.bin", "comment": "Output file path"},
        "dump": {"value": False, "comment": "Switch for print intermediate information"},
    },
    "Model Configuration": {
        "inputs": {"value": "", "comment": "Comma-separated list of input node names"},
        "outputs": {"value": "", "comment": "Comma-separated list of output node names"},
        "strategy": {"value": "Remove_QuantDequant", "comment": "ignore methods of op fusion"},
        "dynamic_shape": {"value": "x=16:16:1", "comment": "Dynamic shape configuration"},
        "isstream": {"value": None, "comment": "Enable stream processing"},
    },
    "Device Configuration": {
        "platform": {"value": "venusa", "comment": "Target platform"},
        "ramsize": {"value": 393216, "comment": "Maximum valid Share-Memory size"},
        "psramsize": {"value": 8388608, "comment": "Maximum valid PSRAM size"},
    },
    "Memory Preallocate Configuration": {
        "dma_prefetch": {"value": True, "comment": "DMA prefetching function switch"},
        "memory": {"value": "inputs[0]:share-mem", "comment": "Specify the storage location"},
        "threshold1": {"value": 655360, "comment": ""},
        "threshold2": {"value": 655360, "comment": ""},
        "threshold3": {"value": 655360, "comment": ""},
        "threshold4": {"value": 655360, "comment": ""},
    },
}


def test_the_originals_nested_config_file_is_read(cnn):
    (cnn / "config.json").write_text(json.dumps(ORIGINAL_CONFIG, indent=4))
    r = tpacker("--config_file", "config.json", cwd=cnn)
    assert r.returncode == 0, r.stderr
    r2 = tpacker("-g", "cnn.onnx", "-o", "flags.bin", "-s", "Remove_QuantDequant", "-c",
                 "x=16:16:1", "-p", "venusA", "-r", "393216", "--psramsize", "8388608", "-m",
                 "inputs[0]:share-mem", "--threshold4", "655360", cwd=cnn)
    assert r2.returncode == 0, r2.stderr
    assert (cnn / "from_config.bin").read_bytes() == (cnn / "flags.bin").read_bytes()
    # command-line flags win over the file
    r = tpacker("--config_file", "config.json", "-o", "override.bin", cwd=cnn)
    assert r.returncode == 0 and (cnn / "override.bin").exists()
    # plain values (without value/comment) are read too; unknown keys are named
    plain = {"Basic Configuration": {"graph_path": "cnn.onnx", "output_path": "plain.bin"}}
    (cnn / "plain.json").write_text(json.dumps(plain))
    assert tpacker("--config_file", "plain.json", cwd=cnn).returncode == 0
    bad = {"Basic Configuration": {"graph_path": "cnn.onnx", "colour": {"value": 1}}}
    (cnn / "bad.json").write_text(json.dumps(bad))
    r = tpacker("--config_file", "bad.json", cwd=cnn)
    assert r.returncode == 1 and "unknown option 'colour'" in r.stderr


def test_export_config_in_the_originals_format_round_trips(cnn):
    r = tpacker("-g", "cnn.onnx", "-o", "a.bin", "-p", "arcs", "-s", "Remove_QuantDequant",
                "-m", "inputs[0]:psram", "--export_config", "orig.json", "--config-format",
                "original", cwd=cnn)
    assert r.returncode == 0, r.stderr
    data = json.loads((cnn / "orig.json").read_text())
    assert list(data) == ["Basic Configuration", "Model Configuration", "Device Configuration",
                          "Memory Preallocate Configuration"]
    assert data["Basic Configuration"]["graph_path"] == {"value": "cnn.onnx",
                                                        "comment": "Path of ONNX graph file"}
    assert data["Model Configuration"]["strategy"]["value"] == "Remove_QuantDequant"
    assert data["Device Configuration"]["platform"]["value"] == "arcs"
    assert data["Device Configuration"]["ramsize"]["value"] == 393216  # arcs share-memory
    assert data["Memory Preallocate Configuration"]["memory"]["value"] == "inputs[0]:psram"
    os.rename(cnn / "a.bin", cnn / "first.bin")
    r = tpacker("--config_file", "orig.json", cwd=cnn)
    assert r.returncode == 0, r.stderr
    assert (cnn / "a.bin").read_bytes() == (cnn / "first.bin").read_bytes()
    # what the original's format cannot say is refused before any work
    r = tpacker("-g", "cnn.onnx", "-o", "b.bin", "--skip", "split_conv_rows",
                "--export_config", "o2.json", "--config-format", "original", cwd=cnn)
    assert r.returncode == 1 and "--config-format thinker" in r.stderr
    assert not (cnn / "b.bin").exists() and not (cnn / "o2.json").exists()
