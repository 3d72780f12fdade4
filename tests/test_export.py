"""deepdive export: each format reloaded (or run by onnxruntime) agrees with deepdive.load; bad input is one line."""
import importlib.util
import json
import re

import numpy as np
import pytest
import torch

import deepdive
from api_runs import copy_of, trained
from conftest import assert_one_line_error


def images(n, shape=(3, 16, 16), seed=5):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8))


def printed_difference(result):
    """The printed max difference, checked against the printed tolerance."""
    found = re.search(r"max abs difference vs PyTorch: (\S+) \(tolerance (\S+)\)", result.out)
    assert found, result.out + result.err
    difference, tolerance = float(found.group(1)), float(found.group(2))
    assert tolerance == 1e-4 and 0 <= difference <= tolerance
    return difference


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None,
                    reason="onnxruntime is not installed: pip install 'deepdive[onnx]'")
def test_onnx_round_trip(cli, tmp_path_factory, tmp_path):
    import onnxruntime

    run = copy_of(trained("FASTNET", tmp_path_factory)[0], tmp_path)
    result = cli("export", run, "--format", "onnx")
    assert result.code == 0, result.err
    printed_difference(result)
    side = json.loads((run / "model.onnx.json").read_text())
    info = json.loads((run / "model.json").read_text())
    from deepdive.storage.runs import is_run_folder
    assert is_run_folder(run)  # the exports belong to the run: --overwrite may still replace it
    assert side["input"] == {"name": "images", "dtype": "uint8", "layout": "NCHW", "shape": ["batch", 3, 16, 16],
                             "pixels": side["input"]["pixels"]}
    assert (side["classes"], side["mean"], side["std"], side["tta"]) == (info["classes"], info["mean"], info["std"],
                                                                         "flip")
    session = onnxruntime.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    predictor = deepdive.load(run, device="cpu")
    for n in (1, 7):  # the batch dimension is free (traced with 2, checked with 3)
        x = images(n, seed=n)
        logits = torch.from_numpy(session.run(["logits"], {"images": x.numpy()})[0])
        assert torch.allclose(torch.softmax(logits.double(), 1), predictor(x), atol=1e-5)


def test_torchscript_and_exported_program_round_trip(cli, tmp_path_factory, tmp_path):
    run, _ = trained("FASTNET", tmp_path_factory)
    predictor = deepdive.load(run, device="cpu")
    x = images(5)
    for fmt, name, reload in (("torchscript", "m.ts", lambda p: torch.jit.load(p)),
                              ("exported-program", "m.pt2", lambda p: torch.export.load(p).module())):
        result = cli("export", run, "--format", fmt, "--out", tmp_path / name)
        assert result.code == 0, result.err
        printed_difference(result)
        with torch.no_grad():
            logits = reload(str(tmp_path / name))(x)
        assert (logits - predictor.logits(x)).abs().max() <= 1e-4  # flip views and normalization inside
        assert json.loads((tmp_path / f"{name}.json").read_text())["output"]["name"] == "logits"
    assert not (run / "model.ts").exists()  # --out was honoured


def test_the_exported_normalization_moves_with_the_module_and_leaves_its_input_alone(cli, tmp_path_factory,
                                                                                     tmp_path):
    """The file holds the run's mean and std as the module's own buffers ``mean`` and ``std`` (they follow
    ``.to(device)``; no device is written into the traced code), and a float input is not changed in place."""
    run, _ = trained("FASTNET", tmp_path_factory)
    assert cli("export", run, "--format", "torchscript", "--out", tmp_path / "m.ts").code == 0
    module = torch.jit.load(str(tmp_path / "m.ts"))
    predictor = deepdive.load(run, device="cpu")
    buffers = dict(module.named_buffers())
    assert torch.allclose(buffers["mean"].flatten(), torch.tensor(predictor.mean, dtype=torch.float32))
    assert torch.allclose(buffers["std"].flatten(), torch.tensor(predictor.std, dtype=torch.float32))
    assert "cpu" not in module.code
    x = images(2).float()
    before = x.clone()
    with torch.no_grad():
        module(x)
    assert torch.equal(x, before)


def test_a_scratch_engine_run_exports_its_torch_rebuild(cli, tmp_path_factory, tmp_path):
    run, _ = trained("SCRATCH", tmp_path_factory)
    result = cli("export", run, "--format", "torchscript", "--out", tmp_path / "s.pt", "--json")
    assert result.code == 0, result.err
    assert result.json()["max_abs_difference"] <= 1e-4 and "max abs difference vs PyTorch" in result.err
    x = images(4, (1, 8, 8))
    with torch.no_grad():
        logits = torch.jit.load(str(tmp_path / "s.pt"))(x)
    assert (logits - deepdive.load(run).logits(x)).abs().max() <= 1e-4  # against the NumPy engine's numbers


def test_over_the_tolerance_is_exit_1_and_no_file(cli, tmp_path_factory, tmp_path, monkeypatch):
    import deepdive.inference.export
    run, _ = trained("SCRATCH", tmp_path_factory)
    monkeypatch.setattr(deepdive.inference.export, "TOLERANCE", -1.0)  # any difference exceeds it
    result = cli("export", run, "--format", "torchscript", "--out", tmp_path / "s.ts")
    assert result.code == 1 and "exceeds the tolerance" in result.err and "Traceback" not in result.err
    assert list(tmp_path.iterdir()) == []  # neither the file, its side file, nor a temp file


def test_bad_inputs_exit_2_with_one_line(cli, tmp_path_factory, tmp_path, monkeypatch):
    import deepdive.inference.export
    run, _ = trained("SCRATCH", tmp_path_factory)
    assert_one_line_error(cli("export", tmp_path, "--format", "torchscript"), "not a run folder")
    assert_one_line_error(cli("export", tmp_path / "nope", "--format", "torchscript"), "does not exist")
    assert_one_line_error(cli("export", run, "--format", "torchscript", "--out", tmp_path / "no" / "m.ts"),
                          "does not exist")
    assert_one_line_error(cli("export", run, "--format", "torchscript", "--out", tmp_path / "m.onnx"), ".ts")
    assert_one_line_error(cli("export", run, "--format", "tflite"), "invalid choice")
    monkeypatch.setattr(deepdive.inference.export, "ONNX_PACKAGES", ("onnx", "no_such_onnx_package"))
    assert_one_line_error(cli("export", run, "--format", "onnx"), "pip install 'deepdive[onnx]'")
    assert not any(p.name.startswith("model.") and p.suffix in (".onnx", ".ts", ".pt2") for p in run.iterdir())


def test_export_never_overwrites_the_run_files(cli, tmp_path_factory, tmp_path):
    run = copy_of(trained("SCRATCH", tmp_path_factory)[0], tmp_path)
    (run / "mine.ts").write_bytes(b"a file of yours")
    (tmp_path / "link.pt").symlink_to(run / "state.pt")
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    for out in (run / "state.pt", run / "mine.ts", run / ".." / run.name / "state.pt", tmp_path / "link.pt"):
        assert_one_line_error(cli("export", run, "--format", "torchscript", "--out", out), "would overwrite",
                              "a file of the run folder")
    (run / "state.pt").unlink()  # a run file's name is refused even when the file is not there yet
    assert_one_line_error(cli("export", run, "--format", "torchscript", "--out", run / "state.pt"), "would overwrite")
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == \
        {k: v for k, v in before.items() if k != "state.pt"}
    assert cli("export", run, "--format", "torchscript", "--out", run / "model.pt").code == 0  # a new file: fine
    assert cli("export", run, "--format", "torchscript").code == 0  # export's own model.ts: written ...
    assert cli("export", run, "--format", "torchscript").code == 0  # ... and replaced


def test_both_export_files_are_checked_and_written_together(cli, tmp_path_factory, tmp_path, monkeypatch):
    import deepdive.storage.atomic
    from deepdive.errors import WriteFailed
    run, _ = trained("SCRATCH", tmp_path_factory)
    (tmp_path / "h.ts.json").mkdir()
    assert_one_line_error(cli("export", run, "--format", "torchscript", "--out", tmp_path / "h.ts"),
                          "h.ts.json is a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.ts.json"]  # h.ts not written
    (tmp_path / "dir.ts").mkdir()
    assert_one_line_error(cli("export", run, "--format", "torchscript", "--out", tmp_path / "dir.ts"),
                          f"give a file path, e.g. {tmp_path / 'dir.ts' / 'model.ts'}")

    def full(path, obj):
        raise WriteFailed(path, OSError(28, "No space left on device"))

    (tmp_path / "old.ts").write_bytes(b"the previous export")
    monkeypatch.setattr(deepdive.storage.atomic, "write_json_atomic", full)  # the side file's write fails
    for name in ("new.ts", "old.ts"):
        result = cli("export", run, "--format", "torchscript", "--out", tmp_path / name)
        assert_one_line_error(result, f"cannot write {tmp_path / name}.json (No space left on device)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.ts", "h.ts.json", "old.ts"]  # no new.ts, no temp
    assert (tmp_path / "old.ts").read_bytes() == b"the previous export"
