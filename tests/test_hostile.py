"""Every bad input found by trying deepdive as an attacker or a careless user would: one line, the right
exit code, no traceback, nothing changed - and tiny files that declare gigabytes stay tiny in memory."""
import json
import os
import pickle
import resource
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT, SYNTH, assert_one_line_error
from hostile_files import (blank_images_pickle, cifar_folder, cifar_labels_batch, gzip_idx_bomb,
                           nine_byte_pickle, object_dtype_pickle)
from test_run_folders import snapshot


@pytest.fixture(scope="module")
def done_run(tmp_path_factory):
    """A finished one-epoch run, copied afresh for each test that damages it."""
    from deepdive.cli import main
    run = tmp_path_factory.mktemp("done") / "run"
    assert main(["-q", "train", *SYNTH, "--epochs", "1", "--out", str(run)]) == 0
    return run


@pytest.fixture
def run(done_run, tmp_path):
    import shutil
    copy = tmp_path / "run"
    shutil.copytree(done_run, copy)
    summary = json.loads((copy / "summary.json").read_text())
    summary["status"] = "interrupted"  # resume has work to do
    (copy / "summary.json").write_text(json.dumps(summary))
    return copy


def edit_state(run, change):
    state = torch.load(run / "state.pt", weights_only=True)
    change(state)
    torch.save(state, run / "state.pt")


@pytest.mark.parametrize("change, fragment", [
    (lambda s: s.pop("rng"), "lacks rng"),
    (lambda s: s["loop"].update(epoch="one"), "loop.epoch should be an integer, not 'one'"),
    (lambda s: s.update(model={"foo.weight": torch.zeros(3)}), "does not fit this run"),
    (lambda s: s["rng"].update(torch=torch.zeros(3, dtype=torch.uint8)), "does not fit this run"),
    (lambda s: s["loop"].update(order=torch.arange(5)), "does not fit this run"),
    (lambda s: s["optimizer"]["param_groups"][0].update(betas="ab"), "does not fit this run"),
    (lambda s: s["optimizer"]["state"][0].update(exp_avg=torch.zeros(2, 2)), "does not fit this run"),
])
def test_a_state_pt_wrong_inside_is_one_line_and_changes_nothing(cli, run, change, fragment):
    edit_state(run, change)
    before = snapshot(run)
    assert_one_line_error(cli("train", "--resume", run), fragment)
    assert snapshot(run) == before


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float8_e4m3fn])
def test_safetensors_of_dtypes_numpy_lacks(cli, run, dtype):
    from safetensors.torch import load_file, save_file
    weights = load_file(str(run / "model.safetensors"))  # the right names and shapes, in a dtype NumPy lacks
    save_file({k: v.to(dtype) for k, v in weights.items()}, str(run / "model.safetensors"))
    result = cli("evaluate", run)
    assert_one_line_error(result, "model.safetensors")
    # NumPy reads bfloat16/float8 only where ml_dtypes is installed (onnx brings it): refused either way
    assert "not a readable safetensors file" in result.err or "not a number type" in result.err


@pytest.mark.parametrize("change, fragment", [
    (lambda m: m.update(classes=5), "classes should be a list"),
    (lambda m: m.pop("input_shape"), "lacks input_shape"),
    (lambda m: m.update(model="../../../tmp/evil"), "model should be one of"),
    (lambda m: m.update(input_shape=[3, 100000, 100000]), "input_shape should be [C, H, W]"),
    (lambda m: m.update(std=[0.0]), "std[0] should be a number > 0"),
    (lambda m: m.update(options={"widths": [64]}), "unexpected key(s) widths"),
])
def test_model_json_wrong_inside(cli, run, change, fragment):
    info = json.loads((run / "model.json").read_text())
    change(info)
    (run / "model.json").write_text(json.dumps(info))
    for command in (["evaluate", run], ["predict", run, __file__], ["train", "--resume", run]):
        assert_one_line_error(cli(*command), "model.json", fragment)


def test_config_json_of_wrong_types(cli, run, tmp_path):
    config = json.loads((run / "config.json").read_text())
    config["epochs"] = "ten"
    (run / "config.json").write_text(json.dumps(config))
    assert_one_line_error(cli("evaluate", run), "config.json", "epochs should be an integer")
    assert_one_line_error(cli("train", "--config", run / "config.json"), "epochs should be an integer")
    config.update(epochs=1, lr=[1], synthetic={"shape": [1, 8, 8], "classes": "4", "train": 10, "test": 10})
    (run / "config.json").write_text(json.dumps(config))
    assert_one_line_error(cli("train", "--config", run / "config.json"), "lr should be a finite number")
    (tmp_path / "nan.json").write_text('{"lr": NaN}')
    assert_one_line_error(cli("train", "--config", tmp_path / "nan.json"), "lr should be a finite number")


def test_summary_and_metrics_wrong_inside(cli, run):
    before = (run / "summary.json").read_text()
    (run / "summary.json").write_text("[1, 2]")
    assert_one_line_error(cli("train", "--resume", run), "summary.json", "should be an object")
    (run / "summary.json").write_text(before)
    (run / "metrics.jsonl").write_text('{"train_loss": 1.0}\n')
    assert_one_line_error(cli("train", "--resume", run), "metrics.jsonl line 1", "lacks epoch")


@pytest.mark.parametrize("labels, fragment", [([2 ** 70, 0], "labels that do not match"),
                                              ([-2 ** 64, 0], "labels that do not match"),
                                              ([float("inf"), 0], "labels that do not match"),
                                              ([1], "labels that do not match")])
def test_cifar_labels_out_of_any_range(cli, tmp_path, labels, fragment):
    cifar_folder(tmp_path / "data", cifar_labels_batch(labels) if len(labels) > 1 else
                 pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": labels}, protocol=2))
    result = cli("train", "--dataset", "cifar10", "--data-dir", tmp_path / "data", "--no-download",
                 "--out", tmp_path / "run")
    assert_one_line_error(result, fragment)


@pytest.mark.parametrize("args, fragment", [
    (["--seed", "99999999999999999999999"], "--seed"),
    (["--augment", "crop-flip", "--crop-pad", "100"], "--crop-pad 100 is not smaller than the 8-pixel images"),
    (["--weight-decay", "nan"], "--weight-decay"),
    (["--weight-decay", "inf"], "--weight-decay"),
    (["--synthetic-shape", "3,5000,5000"], "synthetic dataset spec"),
    (["--synthetic-classes", "1000000000"], "synthetic dataset spec"),
    (["--image-size", "100000"], "--image-size 100000 is too large"),
    (["-j", "-1"], "--workers -1 is invalid"),
    (["--divergence-factor", "0.5"], "--divergence-factor"),
    (["--max-image-mb", "-1"], "--max-image-mb"),
])
def test_bad_flag_values(cli, tmp_path, args, fragment):
    assert_one_line_error(cli("train", *SYNTH, "--out", tmp_path / "run", *args), fragment)
    assert not (tmp_path / "run").exists()


def test_limits_and_batch_sizes_above_the_data_are_clamped_with_a_warning(cli, tmp_path, caplog):
    with caplog.at_level("WARNING", logger="deepdive"):
        result = cli("train", *SYNTH, "--epochs", "1", "--limit-train", "1000000000", "--limit-test", "999999",
                     "-b", "1000000000000", "--out", tmp_path / "run", "--json")
    assert result.code == 0, result.err
    assert "--limit-train 1000000000 is more than the 2000 train images" in caplog.text
    assert "--limit-test 999999 is more than the 500 test images" in caplog.text
    assert "--batch-size 1000000000000 is larger than the 2000 training images" in caplog.text


def test_a_loss_that_explodes_without_nan_fails_the_run(cli, tmp_path):
    result = cli("train", *SYNTH, "--lr", "1e9", "--epochs", "2", "--out", tmp_path / "run")
    assert result.code == 1, result.err
    assert "above 1000 times the first step's" in result.err and "--divergence-factor" in result.err
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "failed"
    # the same run with a factor it stays under trains on (the check follows the flag)
    assert cli("train", *SYNTH, "--lr", "1e9", "--epochs", "1", "--divergence-factor", "1e300",
               "--out", tmp_path / "run2").code in (0, 1)


def test_divergence_factor_is_the_first_losses_multiple(tmp_path):
    """The threshold is factor x the first step's loss: a run whose loss grows 3x fails at factor 2 only."""
    from deepdive.config.train_config import TrainConfig
    from deepdive.errors import RunFailed
    from deepdive.training.ddp.group import OneProcess, Rows
    from deepdive.training.loop import Trainer
    from deepdive.training.signals import StopFlag
    from deepdive.training.train_state import Stopwatch

    class Fake:
        cfg = TrainConfig(divergence_factor=2.0)
        loss_value = Trainer.loss_value
        group, rows, signals, stop, watch = OneProcess(), Rows(0, 1, 1), StopFlag(), StopFlag(), Stopwatch()

    for factor, fails in ((2.0, True), (4.0, False)):
        fake = Fake()
        fake.cfg = TrainConfig(divergence_factor=factor)
        from deepdive.training.train_state import TrainState
        fake.state = TrainState()
        losses = iter([1.0, 3.0])

        class Loss:
            def backward(self):
                pass

            def item(self):
                return next(losses)

        Trainer.phase_backward(fake, Loss())
        fake.state.record_step(1.0, 1)
        if fails:
            with pytest.raises(RunFailed, match="above 2 times the first step's 1"):
                Trainer.phase_backward(fake, Loss())
        else:
            assert Trainer.phase_backward(fake, Loss()) == 3.0


CHILD = """
import resource, sys, json
from deepdive.cli import main
codes = []
try:
    for argv in json.loads(sys.argv[1]):
        codes.append(main(argv))
        print("END", file=sys.stderr)
finally:
    print("MAXRSS", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, json.dumps(codes), file=sys.stderr)
"""


def run_measured_many(commands, env=None, preexec=None):
    """Several ``deepdive`` commands, one after another in one child process; returns their exit codes,
    their stderr (one string per command) and the child's peak resident memory in MB."""
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps([list(map(str, c)) for c in commands])],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, **(env or {})),
                          preexec_fn=preexec, cwd=ROOT)
    *errs, last = done.stderr.split("MAXRSS")
    rss, codes = last.split(maxsplit=1)
    texts = [t.strip() for t in "".join(errs).split("END")][:len(commands)]
    codes = json.loads(codes)
    codes += [done.returncode] * (len(commands) - len(codes))  # a command that ended the child
    return codes, texts + [""] * (len(commands) - len(texts)), int(rss) / 1024


def run_measured(args, env=None, preexec=None):
    """``deepdive ARGS`` in a child; returns (exit code, stderr, peak resident memory in MB)."""
    codes, texts, rss = run_measured_many([args], env, preexec)
    return codes[0], texts[0], rss


def test_tiny_files_that_declare_gigabytes_stay_small(tmp_path):
    """The acceptance check: refused with at most 200 MB more resident memory than a tiny synthetic run.
    The four hostile commands share one child, whose peak is the largest of theirs."""
    code, err, baseline = run_measured(["train", "--model", "simplenet", "--dataset", "synthetic", "--epochs", "1",
                                        "--out", tmp_path / "baseline"])
    assert code == 0, err
    cases = {"nine": nine_byte_pickle(), "object": object_dtype_pickle(), "blank": blank_images_pickle()}
    assert len(cases["nine"]) <= 9 and len(cases["object"]) <= 200 and len(cases["blank"]) <= 300
    commands = [["train", "--dataset", "cifar10", "--data-dir", cifar_folder(tmp_path / name, batch),
                 "--no-download", "--out", tmp_path / f"run-{name}"] for name, batch in cases.items()]
    bomb = gzip_idx_bomb(tmp_path / "bomb", megabytes=1000)
    assert os.path.getsize(bomb / "train-images-idx3-ubyte.gz") < 1.2e6
    commands.append(["train", "--dataset", "mnist", "--data-dir", bomb, "--out", tmp_path / "run-gz"])
    codes, errs, rss = run_measured_many(commands)
    for code, err in zip(codes, errs):
        assert code == 2 and "Traceback" not in err and len(err.splitlines()) == 1, (codes, errs)
    assert "holds more than 47040000 bytes of data but its header (60000, 28, 28) needs 47040000" in errs[-1]
    assert rss <= baseline + 200, (rss, baseline)


def test_disk_full_is_one_line_naming_the_file_and_keeps_the_last_checkpoint(cli, tmp_path):
    """A real failed write - a file-size limit makes the kernel refuse it, as a full disk does - inside
    torch.save: exit 1, one line naming state.pt and the free space, status failed, epoch 1's checkpoint
    intact, no temp file left, and the run resumes once writes work again."""
    import signal
    run = tmp_path / "run"
    assert cli("train", *SYNTH, "--epochs", "1", "--out", run).code == 0
    state_before = (run / "state.pt").read_bytes()
    limit = (run / "model.safetensors").stat().st_size + 4096  # weights fit; state.pt (weights + Adam's) not

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing us
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    code, err, _ = run_measured(["train", "--resume", run, "--force", "--epochs", "3"], preexec=small_files)
    assert code == 1, err
    assert "Traceback" not in err and len([line for line in err.splitlines() if "failed" in line]) == 1, err
    assert "writing" in err and "state.pt failed" in err and "free there" in err and "checkpoint is intact" in err
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"
    assert (run / "state.pt").read_bytes() == state_before
    assert not [n for n in os.listdir(run) if n.endswith(".tmp")]
    assert cli("train", "--resume", run).code == 0
    assert json.loads((run / "summary.json").read_text())["epochs"] == 3


def imagefolder_args(root, tmp_path, name, *extra):
    return ["train", "--dataset", "imagefolder", "--data-dir", root, "--image-size", "8", "--model", "perceptron",
            "--epochs", "1", "-j", "0", "--out", tmp_path / name, *extra]


def test_decompression_bomb_is_one_more_unreadable_file(cli, tmp_path, monkeypatch, caplog):
    from PIL import Image

    from test_data_imagefolder import make_tree
    root = make_tree(tmp_path / "tree", per_class=2, size=(20, 20))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # PIL warns above 1,000 pixels, refuses above 2,000
    Image.new("RGB", (40, 40)).save(root / "train" / "cat" / "bomb.png")  # 1,600 pixels: a warning in PIL
    with caplog.at_level("WARNING", logger="deepdive"):
        result = cli(*imagefolder_args(root, tmp_path, "run"))
    assert result.code == 0, result.err
    assert "skipped 1 unreadable or non-image file(s)" in caplog.text and "bomb.png" in caplog.text
    assert "DecompressionBombWarning" not in result.err + caplog.text


def test_a_huge_sparse_file_in_an_image_folder_is_never_read(cli, tmp_path, caplog):
    """64 GB on paper, nothing on disk: skipped as above --max-image-mb, and neither hashed nor decoded
    (the bytes this process reads, from /proc/self/io, stay far below the file's size)."""
    from test_data_imagefolder import make_tree
    root = make_tree(tmp_path / "tree", per_class=2)
    with open(root / "train" / "dog" / "huge.png", "wb") as f:
        f.truncate(64 << 30)

    def bytes_read():
        return int(next(line for line in open("/proc/self/io") if line.startswith("rchar")).split()[1])

    before = bytes_read()
    with caplog.at_level("WARNING", logger="deepdive"):
        result = cli(*imagefolder_args(root, tmp_path, "run"))
    assert result.code == 0, result.err
    assert bytes_read() - before < 1 << 30
    assert "skipped 1 unreadable" in caplog.text and "huge.png" in caplog.text


def streaming_tree(tmp_path):
    from PIL import Image

    from test_data_imagefolder import make_tree
    root = make_tree(tmp_path / "tree", per_class=2)
    (root / "train" / "cat" / "notes.txt").write_text("not an image")  # its header says so
    whole = root / "train" / "dog" / "whole.png"
    Image.new("RGB", (40, 30), (9, 99, 199)).save(whole)
    (root / "train" / "dog" / "cut.png").write_bytes(whole.read_bytes()[:-30])  # opens; its pixels do not
    return root


def test_streaming_keeps_the_skip_and_strict_contract(cli, tmp_path, monkeypatch, caplog):
    """The same unreadable files, decoded in memory and streamed from disk: the same refusal with --strict,
    the same warning without (streaming names the file whose body fails when its batch is formed)."""
    root = streaming_tree(tmp_path)
    in_memory = cli(*imagefolder_args(root, tmp_path, "mem", "--strict"))
    assert_one_line_error(in_memory, "cannot read image", "remove or replace them, or drop --strict")
    monkeypatch.setattr("deepdive.data.imagefolder.memory_limit", lambda: 1)  # decoded data may take 1 byte: streamed
    for name in ("notes.txt", "cut.png"):
        streamed = cli(*imagefolder_args(root, tmp_path, f"stream-{name}", "--strict"))
        assert_one_line_error(streamed, "cannot read image", "remove or replace them, or drop --strict")
        assert name in streamed.err
        if name == "notes.txt":
            (root / "train" / "cat" / "notes.txt").unlink()  # now only the file that fails mid-epoch is left
    assert json.loads((tmp_path / "stream-cut.png" / "summary.json").read_text())["status"] == "failed"
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    with caplog.at_level("WARNING", logger="deepdive"):
        result = cli(*imagefolder_args(root, tmp_path, "stream", "--json"))
    assert result.code == 0, result.err
    assert "skipped 1 unreadable or non-image file(s): " in caplog.text and "notes.txt" in caplog.text
    assert "skipped 1 unreadable or non-image file(s) found while streaming: " in caplog.text
    assert "cut.png" in caplog.text
    assert result.json()["train_examples"] == 3 * 2 + 2  # the cut file stays listed; its batch drops it


def test_other_libraries_info_lines_stay_quiet():
    """Only deepdive's logger speaks at INFO (torch printed "FakeTensor cache stats" at exit when Ctrl-C
    cut its import short, its loggers then unconfigured and inheriting the CLI's INFO level)."""
    code = ("import logging, sys\nfrom deepdive.cli import main\nmain(['list'])\n"
            "logging.getLogger('some.library').info('chatter')\nlogging.getLogger('deepdive').info('ours')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "chatter" not in done.stderr and "ours" in done.stderr


def test_a_string_reused_by_memo_cannot_multiply_memory(tmp_path):
    """10 KB encoded 20,000 times would make 200 MB from a 150 KB file: refused within the budget."""
    import tracemalloc

    from deepdive.data.cifar import _parse_batch
    from deepdive.errors import UserError
    from hostile_files import reused_string_pickle
    data = reused_string_pickle()
    tracemalloc.start()
    with pytest.raises(UserError, match="builds more data than it holds"):
        _parse_batch(data, tmp_path / "data_batch_1")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 * len(data) + (8 << 20), peak


def test_a_deflated_state_pt_is_refused_before_torch_inflates_it(cli, run):
    from hostile_files import deflated_copy
    deflated_copy(run / "state.pt")
    before = snapshot(run)
    assert_one_line_error(cli("train", "--resume", run), "compressed or oversized members")
    assert snapshot(run) == before


def test_state_pt_extra_parts_are_checked_too(cli, run):
    edit_state(run, lambda s: s.update(augment={"junk": torch.zeros(10)}))
    assert_one_line_error(cli("train", "--resume", run), "augment")


@pytest.mark.parametrize("change", [lambda m: m.update(input_shape=[1, 1024, 1024]),
                                    lambda m: m.update(classes=[f"c{i}" for i in range(50_000)])])
def test_a_model_json_describing_a_huge_model_allocates_nothing(cli, run, change):
    """Checked against the weights file's header, on PyTorch's meta device, before the model is built."""
    import tracemalloc
    info = json.loads((run / "model.json").read_text())
    change(info)
    (run / "model.json").write_text(json.dumps(info))
    tracemalloc.start()
    result = cli("evaluate", run)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert_one_line_error(result, "describes a model of", "holds 16,836")
    assert peak < 64 << 20, peak


def test_a_config_describing_a_huge_model_is_refused_before_building_it(cli, tmp_path, monkeypatch):
    """With 6 GiB available, simplenet on 1x2048x2048 images (537 M parameters, 8.6 GB with gradients and
    Adam's two moments) is refused: counted on the meta device, never built."""
    from deepdive.config import machine
    monkeypatch.setattr(machine, "available_memory", lambda: 6 << 30)
    config = tmp_path / "big.json"
    config.write_text(json.dumps({"dataset": "synthetic", "synthetic": {"shape": [1, 2048, 2048], "classes": 2,
                                                                         "train": 2, "test": 2}}))
    numbers = (2048 * 2048 + 1) * 128 + 129 * 64 + 65 * 2  # simplenet: 128, 64 and 2 units, with biases
    assert numbers == 536_879_426
    assert_one_line_error(cli("train", "--config", config, "--out", tmp_path / "run"), f"{numbers:,} parameters",
                          "8.6 GB with gradients and optimizer state, more than the 6.4 GB available")
    assert not (tmp_path / "run").exists()


def test_more_bad_values(cli, tmp_path):
    for args, fragment in ((["--threads", "1000000"], "--threads 1000000 is more than"),
                           (["--model", "fastnet", "--widths", "99999999999999999999"], "--widths"),
                           (["--max-image-mb", "1e308"], "--max-image-mb"),
                           (["--epochs", "1000000000000000000000"], "--epochs")):
        assert_one_line_error(cli("train", *SYNTH, "--out", tmp_path / "run", *args), fragment)
    assert_one_line_error(cli("train", "--config", "/dev/zero"), "/dev/zero is a character device, not a file")
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (1 << 20) + b"{}")
    assert_one_line_error(cli("train", "--config", big), "larger than 1 MB")


def test_idx_images_of_absurd_sides_are_refused_from_the_header(tmp_path):
    import gzip
    import struct

    from deepdive.data.mnist import _read_idx
    from deepdive.errors import UserError
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(struct.pack(">HBB3I", 0, 8, 3, 2, 1, 10_000_000)))
    with pytest.raises(UserError, match="declares images of 1x10000000 pixels"):
        _read_idx(path, 3)


def test_cifar_class_names_that_are_not_text(cli, tmp_path):
    from cifar_files import write_cifar
    folder = write_cifar(tmp_path / "data", per_batch=4)
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [b"\xff\xfe"] * 10}, protocol=2))
    result = cli("train", "--dataset", "cifar10", "--data-dir", tmp_path / "data", "--no-download",
                 "--out", tmp_path / "run")
    assert_one_line_error(result, "10 printable label names")


def test_a_damaged_cache_entry_is_rebuilt_not_trusted(cli, tmp_path, monkeypatch):
    from cifar_files import write_cifar
    monkeypatch.setenv("DEEPDIVE_CACHE", str(tmp_path / "cache"))
    write_cifar(tmp_path / "data", per_batch=4)
    args = ["train", "--dataset", "cifar10", "--data-dir", tmp_path / "data", "--no-download", "--epochs", "1",
            "--model", "perceptron"]
    assert cli(*args, "--out", tmp_path / "a").code == 0
    [entry] = (tmp_path / "cache").iterdir()
    saved = torch.load(entry, weights_only=True)
    saved["train_labels"].fill_(50)
    torch.save(saved, entry)
    result = cli(*args, "--out", tmp_path / "b")
    assert result.code == 0, result.err
    assert (tmp_path / "b" / "summary.json").exists()


def test_nan_weights_are_a_failure_and_print_no_json(cli, run):
    """A model whose weights are NaN is a failed run (exit 1, one line; issue 24), and --json prints nothing that a
    parser could take for a result."""
    from safetensors.numpy import load_file, save_file
    weights = load_file(str(run / "model.safetensors"))
    save_file({k: np.full_like(v, np.nan) if v.dtype.kind == "f" else v for k, v in weights.items()},
              str(run / "model.safetensors"))
    result = cli("evaluate", run, "--json")
    assert result.code == 1 and result.out == "" and "NaN or infinite weights" in result.err


def test_max_image_mb_sets_the_ceiling(cli, tmp_path):
    """The same folder loads at the default ceiling and holds no readable image below its files' size."""
    from test_data_imagefolder import make_tree
    root = make_tree(tmp_path / "tree", per_class=2)
    assert cli(*imagefolder_args(root, tmp_path, "ok")).code == 0
    assert_one_line_error(cli(*imagefolder_args(root, tmp_path, "tiny", "--max-image-mb", "0.0001")),
                          "hold no readable image")
