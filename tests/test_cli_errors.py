"""Issue 11, "Errors" and "Nothing lost": the commands as a user types them. Every mistake is
one line on stderr with exit code 1 (2 for a wrong command line), never a traceback, and
nothing is written or overwritten."""

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper

from onnx_build import model, node, value_info
from packing_models import small_cnn
from thinker.packer import Packer, PackOptions

BIN = os.path.dirname(sys.executable)
ESC = "\x1b[31m"


def cli(tool, *args, cwd=None):
    """The command exactly as a user types it (a new process)."""
    return subprocess.run([os.path.join(BIN, tool), *map(str, args)], capture_output=True,
                          text=True, cwd=cwd)


@pytest.fixture
def call(monkeypatch, capsys):
    """The same command in this process (same parser and error handling, no start-up cost):
    for the many variants of a case whose first form runs through ``cli``."""
    from thinker.cli import main as thinker_main
    from thinker.cli import tpacker

    def run(tool, *args, cwd=None):
        entry = {"thinker": thinker_main.main, "tpacker": tpacker.main}[tool]
        capsys.readouterr()
        with monkeypatch.context() as m:
            if cwd is not None:
                m.chdir(cwd)
            try:
                code = entry([str(a) for a in args])
            except SystemExit as exc:  # argparse
                code = exc.code
        out = capsys.readouterr()
        return subprocess.CompletedProcess([tool, *args], code, out.out, out.err)

    return run


def one_line_error(r, code=1, *fragments):
    """Exit ``code``, exactly one line on stderr starting with 'error:', no traceback."""
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    for fragment in fragments:
        assert fragment in r.stderr, r.stderr
    return r.stderr


def usage_error(r, *fragments):
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    for fragment in fragments:
        assert fragment in r.stderr, r.stderr


def files_in(folder):
    return sorted(p for p in os.listdir(folder))


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """cnn.onnx, its model.bin, an int8 input for it, and a float one."""
    d = tmp_path_factory.mktemp("work")
    onnx.save(small_cnn(), d / "cnn.onnx")
    result = Packer(PackOptions(graph_path=str(d / "cnn.onnx"), output_path=str(d / "cnn.bin"),
                                workspace=str(d / "ws"))).run()
    (d / "cnn.bin").write_bytes(result.model_bin)
    rng = np.random.default_rng(0)
    rng.integers(-128, 128, (1, 3, 16, 16)).astype(np.int8).tofile(d / "x.bin")
    np.save(d / "xf.npy", rng.normal(size=(2, 3, 16, 16)).astype(np.float32))
    return d


@pytest.fixture
def cnn(tmp_path, work):
    """A fresh folder holding copies of the work files (tests may try to destroy them)."""
    for name in ("cnn.onnx", "cnn.bin", "x.bin", "xf.npy"):
        (tmp_path / name).write_bytes((work / name).read_bytes())
    return tmp_path


# ---- tpacker -------------------------------------------------------------------------------


def test_tpacker_refuses_to_overwrite_its_source(cnn, call):
    before = (cnn / "cnn.onnx").read_bytes()
    one_line_error(cli("tpacker", "-g", "cnn.onnx", "-o", "cnn.onnx", cwd=cnn), 1,
                   "-o cnn.onnx: is also this command's model (-g)")
    assert (cnn / "cnn.onnx").read_bytes() == before
    os.symlink(cnn / "cnn.onnx", cnn / "link.onnx")  # the same file under another name
    one_line_error(call("tpacker", "-g", "cnn.onnx", "-o", "link.onnx", cwd=cnn), 1,
                   "is also this command's model")
    os.link(cnn / "cnn.onnx", cnn / "hard.onnx")
    one_line_error(call("tpacker", "-g", "hard.onnx", "-o", "cnn.onnx", cwd=cnn), 1,
                   "is also this command's model")
    assert (cnn / "cnn.onnx").read_bytes() == before


def test_tpacker_output_paths_are_checked_before_any_work(cnn, call):
    before = files_in(cnn)
    (cnn / "folder").mkdir()
    (cnn / "afile").write_text("x")
    one_line_error(cli("tpacker", "-g", "cnn.onnx", "-o", "m.bin", "--export_config", "folder",
                       cwd=cnn), 1, "--export_config folder: is a folder")
    cases = [
        (["-o", "folder"], "-o folder: is a folder; give a file name"),
        (["-o", "folder/"], "-o folder/: is a folder"),
        (["-o", "afile/m.bin"], "afile is a file, not a folder"),
        (["-o", "m.bin", "--workspace", "afile"], "--workspace afile: is a file, not a folder"),
        (["-o", "m.bin", "--workspace", "afile/ws"], "afile is a file, not a folder"),
        (["-o", "m.bin", "--export_config", "m.bin"], "is also -o"),
        (["-o", "ws/cnn/memory_report.txt"], "report file ws/cnn/memory_report.txt: is also -o"),
    ]
    for args, message in cases:
        one_line_error(call("tpacker", "-g", "cnn.onnx", *args, "--workspace", "ws", cwd=cnn)
                       if "--workspace" not in args else
                       call("tpacker", "-g", "cnn.onnx", *args, cwd=cnn), 1, message)
    assert files_in(cnn) == sorted([*before, "folder", "afile"])  # no model.bin, no workspace
    assert files_in(cnn / "folder") == []


def test_tpacker_writes_model_and_config_atomically(cnn, call):
    r = call("tpacker", "-g", "cnn.onnx", "-o", "out/m.bin", "--export_config", "out/c.json",
             "--workspace", "ws", cwd=cnn)
    assert r.returncode == 0, r.stderr
    assert files_in(cnn / "out") == ["c.json", "m.bin"]  # no temporary file left
    assert files_in(cnn / "ws" / "cnn") == ["memory_report.json", "memory_report.txt",
                                             "share_memory_arena.svg"]


def test_tpacker_config_file_is_an_input_and_its_values_are_checked(cnn, call):
    (cnn / "c.json").write_text(json.dumps({"graph_path": "cnn.onnx"}))
    one_line_error(cli("tpacker", "--config_file", "c.json", "--export_config", "c.json",
                       cwd=cnn), 1, "is also this command's --config_file")
    assert json.loads((cnn / "c.json").read_text()) == {"graph_path": "cnn.onnx"}
    for value in (-1, "big", 1.5, True):
        (cnn / "bad.json").write_text(json.dumps({"graph_path": "cnn.onnx", "ramsize": value}))
        one_line_error(call("tpacker", "--config_file", "bad.json", cwd=cnn), 1,
                       "bad.json: ramsize = ", "expected a number of bytes >= 0")
    (cnn / "bad.json").write_text(json.dumps({"graph_path": "cnn.onnx", "skip": "checks"}))
    one_line_error(call("tpacker", "--config_file", "bad.json", cwd=cnn), 1,
                   "skip = 'checks': expected a list of strings")
    assert not (cnn / "model.bin").exists()


def test_tpacker_usage_errors_exit_2(cnn, call):
    usage_error(cli("tpacker", "-g", "cnn.onnx", "--threshold4", "-1", cwd=cnn),
                "argument --threshold4: must be at least 0, got -1")
    for args, message in [(["-r", "-5"], "argument -r/--ramsize: must be at least 0"),
                          (["--psramsize", "lots"], "'lots' is not an integer"),
                          (["--threshold1", "-2"], "argument --threshold1: must be at least 0"),
                          (["--nope"], "unrecognized arguments: --nope")]:
        usage_error(call("tpacker", "-g", "cnn.onnx", *args, cwd=cnn), message)
    one_line_error(call("tpacker", cwd=cnn), 2, "no model given: use -g MODEL.onnx")


def test_tpacker_ramsize_0_means_no_share_memory(cnn, call):
    """-r 0 is honoured like -r 1 (not silently replaced by the device's size)."""
    one_line_error(cli("tpacker", "-g", "cnn.onnx", "-o", "m.bin", "-r", "0", cwd=cnn), 1,
                   "exceeds venus share-memory 0 B")
    one_line_error(call("tpacker", "-g", "cnn.onnx", "-o", "m.bin", "-r", "1", cwd=cnn), 1,
                   "exceeds venus share-memory 1 B")
    r = call("tpacker", "-g", "cnn.onnx", "-o", "m.bin", "-r", "0", "--threshold4", "0", cwd=cnn)
    assert r.returncode == 0, r.stderr
    assert "share-memory              0            0" in r.stdout


def test_tpacker_refuses_empty_models(cnn, call):
    (cnn / "zero.onnx").write_bytes(b"")
    one_line_error(cli("tpacker", "-g", "zero.onnx", "-o", "z.bin", cwd=cnn), 1,
                   "zero.onnx: empty file (0 bytes), not an ONNX model")
    onnx.save(model([], [value_info("x", np.int8, [1, 4])], ["x"]), cnn / "noops.onnx")
    one_line_error(call("tpacker", "-g", "noops.onnx", "-o", "z.bin", cwd=cnn), 1,
                   "the graph has no ops")
    onnx.save(model([node("Relu", ["x"], ["y"])], [value_info("x", np.int8, [1, 4])], []),
              cnn / "noout.onnx")
    one_line_error(call("tpacker", "-g", "noout.onnx", "-o", "z.bin", cwd=cnn), 1,
                   "the graph has no outputs")
    one_line_error(call("tpacker", "-g", "cnn.onnx", "-o", "z.bin", "--inputs", "a1",
                        "--outputs", "a1", cwd=cnn), 1, "--inputs/--outputs: the graph has no ops")
    one_line_error(call("tpacker", "-g", ".", "-o", "z.bin", cwd=cnn), 1, "is a folder")
    assert not (cnn / "z.bin").exists()


def test_names_with_control_characters_are_escaped_and_problem_lists_stay_readable(cnn):
    nodes = [helper.make_node("Fancy", ["x"], ["a"], name=f"evil\nname{ESC}red"),
             helper.make_node("Softsign", ["a"], ["y"], name="s2")]
    onnx.save(model(nodes, [value_info("x", np.int8, [1, 4])], ["y"]), cnn / "evil.onnx")
    r = cli("tpacker", "-g", "evil.onnx", "-o", "e.bin", cwd=cnn)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "\x1b" not in r.stderr
    lines = r.stderr.splitlines()
    assert lines[0].startswith("error: evil.onnx: cannot import model (2 unsupported op(s)); "
                               "thinker reads quantized models: ")
    assert lines[0].endswith("; first: unsupported op Fancy at 1 node(s): "
                             "'evil\\nname\\x1b[31mred' (supported ops: docs/ops.md)")
    assert len(lines) == 3 and all(line.startswith("  - ") for line in lines[1:])
    assert "Softsign at 1 node(s): 's2'" in lines[2]
    assert not (cnn / "e.bin").exists()


def test_debug_shows_the_traceback_with_the_same_exit_code(cnn):
    r = cli("tpacker", "-g", "cnn.onnx", "-o", "cnn.onnx", "--debug", cwd=cnn)
    assert r.returncode == 1 and "Traceback" in r.stderr and "ThinkerOutputError" in r.stderr


# ---- thinker run ---------------------------------------------------------------------------


def test_run_refuses_to_overwrite_the_model_or_an_input(cnn, call):
    model_bytes, x_bytes = (cnn / "cnn.bin").read_bytes(), (cnn / "x.bin").read_bytes()
    one_line_error(cli("thinker", "run", "cnn.bin", "x.bin", "cnn.bin", cwd=cnn), 1,
                   "output 'l1' file cnn.bin: is also this command's model")
    (cnn / "sub").mkdir()
    one_line_error(call("thinker", "run", "cnn.bin", "x.bin", "sub/../x.bin", cwd=cnn), 1,
                   "is also this command's input 'q' file")
    assert (cnn / "cnn.bin").read_bytes() == model_bytes
    assert (cnn / "x.bin").read_bytes() == x_bytes


def test_run_output_paths(cnn, call):
    (cnn / "folder").mkdir()
    one_line_error(cli("thinker", "run", "cnn.bin", "x.bin", "folder", cwd=cnn), 1,
                   "output 'l1' file folder: is a folder")
    one_line_error(call("thinker", "run", "cnn.bin", "x.bin", "x.bin/y.bin", cwd=cnn), 1,
                   "x.bin is a file, not a folder")
    one_line_error(call("thinker", "run", "cnn.bin", "x.bin", "y.bin", "--dump", "cnn.onnx",
                        cwd=cnn), 1, "--dump cnn.onnx: is a file, not a folder")
    one_line_error(call("thinker", "run", "cnn.bin", "x.bin", "y.bin", "--dump", "x.bin",
                        cwd=cnn), 1, "--dump x.bin: is this command's input 'q' file")
    one_line_error(call("thinker", "run", "cnn.bin", "folder", "y.bin", cwd=cnn), 1,
                   "folder: is a folder, not an input file (for input 'q')")
    assert not (cnn / "y.bin").exists()


def test_multi_output_runs_are_all_or_nothing(cnn, call):
    nodes = [node("Relu", ["x"], ["y1"], name="r1"), node("Relu", ["y1"], ["y2"], name="r2")]
    onnx.save(model(nodes, [value_info("x", np.int8, [1, 4])], ["y1", "y2"]), cnn / "two.onnx")
    np.array([1, -2, 3, -4], np.int8).tofile(cnn / "in.bin")
    (cnn / "afile").write_text("x")
    one_line_error(cli("thinker", "run", "two.onnx", "in.bin", "a.bin", "afile/b.bin", cwd=cnn),
                   1, "output 'y2' file afile/b.bin")
    one_line_error(call("thinker", "run", "two.onnx", "in.bin", "a.bin", "a.bin", cwd=cnn), 1,
                   "output 'y2' file a.bin: is also output 'y1' file")
    assert not (cnn / "a.bin").exists()
    r = call("thinker", "run", "two.onnx", "in.bin", "a.bin", "b.npy", cwd=cnn)
    assert r.returncode == 0, r.stderr
    assert np.fromfile(cnn / "a.bin", np.int8).tolist() == [1, 0, 3, 0]
    assert np.load(cnn / "b.npy").tolist() == [[1, 0, 3, 0]]
    assert not [f for f in files_in(cnn) if f.endswith(".tmp")]


def test_float_input_to_an_int8_model_names_the_exponent_and_the_helper(cnn):
    err = one_line_error(cli("thinker", "run", "cnn.bin", "xf.npy", "y.npy", cwd=cnn), 1,
                         "input 'q': dtype float32 given, int8 expected",
                         "quantized with exponent 5", "model.quantize_inputs(",
                         "thinker.qmath.quantize(x, 5, 8)")
    assert "not .astype(np.int8)" in err
    assert not (cnn / "y.npy").exists()


def test_inputs_with_different_batches_are_refused(cnn, call):
    nodes = [node("iqAdd", ["a", "b"], ["y"], name="add", scale_x=1.0, scale_y=1.0,
                  scale_o=1.0)]
    onnx.save(model(nodes, [value_info("a", np.int8, [1, 4]), value_info("b", np.int8, [1, 4])],
                    ["y"]), cnn / "add.onnx")
    assert call("tpacker", "-g", "add.onnx", "-o", "add.bin", "--workspace", "ws",
                cwd=cnn).returncode == 0
    np.save(cnn / "a.npy", np.ones((3, 4), np.int8))
    np.save(cnn / "b.npy", np.ones((2, 4), np.int8))
    one_line_error(call("thinker", "run", "add.bin", "a.npy", "b.npy", "y.npy", cwd=cnn), 1,
                   "input 'b' has batch 2 but 'a' has 3; give every input the same number")


# ---- validate / profile / report -----------------------------------------------------------


def test_validate_and_profile_option_values(cnn, call):
    usage_error(cli("thinker", "validate", "cnn.onnx", "cnn.bin", "--batch", "0", cwd=cnn),
                "argument --batch: must be at least 1, got 0")
    usage_error(call("thinker", "validate", "cnn.onnx", "cnn.bin", "--batch", "-1", cwd=cnn),
                "argument --batch: must be at least 1, got -1")
    usage_error(call("thinker", "validate", "cnn.onnx", "cnn.bin", "--seed", "-3", cwd=cnn),
                "argument --seed: must be at least 0")
    usage_error(call("thinker", "profile", "cnn.bin", "--top", "-1", cwd=cnn),
                "argument --top: must be at least 0")


def test_profile_outputs_are_checked_first_and_written_together(cnn, call):
    (cnn / "folder").mkdir()
    one_line_error(cli("thinker", "profile", "cnn.bin", "--csv", "folder", cwd=cnn), 1,
                   "--csv folder: is a folder")
    before = (cnn / "cnn.bin").read_bytes()
    one_line_error(call("thinker", "profile", "cnn.bin", "--csv", "ok.csv", "--speedscope",
                        "cnn.bin", cwd=cnn), 1, "--speedscope cnn.bin: is also this command's "
                                                "model")
    assert (cnn / "cnn.bin").read_bytes() == before and not (cnn / "ok.csv").exists()


def test_absurd_shapes_are_one_line_errors(cnn, call):
    onnx.save(model([node("Relu", ["x"], ["y"], name="r")],
                    [value_info("x", np.int8, [1, 2**40, 2**40, 2**40])], ["y"]),
              cnn / "absurd.onnx")
    one_line_error(cli("thinker", "validate", "absurd.onnx", "absurd.onnx", cwd=cnn), 1,
                   "more than 2,147,483,647 elements")  # refused at import (a model rule)
    one_line_error(call("tpacker", "-g", "absurd.onnx", "-o", "a.bin", "-p", "arcs", cwd=cnn),
                   1)
    assert not (cnn / "a.bin").exists()


def test_report_of_a_folder_is_a_one_line_error(cnn, call):
    (cnn / "folder").mkdir()
    one_line_error(call("thinker", "report", "folder", cwd=cnn), 1, "folder: cannot read")


# ---- internal errors (in-process: a bug is simulated) ---------------------------------------


def test_an_internal_error_says_please_report_and_exits_3(cnn, monkeypatch, capsys):
    from thinker.cli import main as thinker_main
    from thinker.tools import inspect

    def broken(data, path):
        raise KeyError("some\nbug")

    monkeypatch.setattr(inspect, "describe_model", broken)
    assert thinker_main.main(["report", str(cnn / "cnn.bin")]) == 3
    err = capsys.readouterr().err
    assert err == ("error: internal error, please report: KeyError: 'some\\nbug' (run with "
                   "--debug for the traceback)\n")
    assert thinker_main.main(["--debug", "report", str(cnn / "cnn.bin")]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("(run with --debug for the traceback)\n")
