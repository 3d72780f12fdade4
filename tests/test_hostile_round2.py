"""The second hostile round: run-folder files as untrusted input at every reader (FIFOs, wrong types, bad bytes,
absurd values), and ranges bounded before they are built. Each case: one line, exit 2, no hang, no traceback."""
import json
import os
import tracemalloc

import pytest

from conftest import SYNTH, assert_one_line_error, run_subprocess


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path, monkeypatch):
    """Commands whose output goes "here" by default (compare) write into the test's folder, not the checkout."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished tiny run, copied fresh for each test that damages it."""
    out = tmp_path_factory.mktemp("runs") / "run"
    done = run_subprocess("train", *SYNTH, "--epochs", "2", "--out", out)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture
def run(trained, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


@pytest.mark.parametrize("seeds, fragment", [
    ("0-1000000000", "names more than 1000"),
    ("0-99999999999999999999", "is out of range"),
    ("3,99999999999999999999", "is out of range"),
    ("0-" + "9" * 5000, "is out of range"),
    ("9-3", "runs backwards"),
])
def test_seed_ranges_are_bounded_before_they_are_built(cli, tmp_path, seeds, fragment):
    tracemalloc.start()
    try:
        result = cli("reproduce", "article", "--seeds", seeds, "--out", tmp_path / "o")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert_one_line_error(result, "--seeds", fragment)
    assert peak < 16 << 20, peak  # the range is never expanded (0-1000000000 would be 40 GB of ints)
    assert not (tmp_path / "o").exists()
    assert_one_line_error(cli("ladder", "--seeds", seeds, "--out", tmp_path / "l"), "--seeds", fragment)


@pytest.mark.parametrize("name, commands", [
    ("metrics.jsonl", (["compare"], ["report"])),  # (a completed run's resume reads no metrics.jsonl: it says so)
    ("summary.json", (["compare"], ["report"], ["train", "--resume"])),
])
def test_a_fifo_in_a_run_folder_is_refused_not_waited_on(run, name, commands):
    (run / name).unlink()
    os.mkfifo(run / name)
    for command in commands:
        done = run_subprocess(*command, run, timeout=120)  # a hang would be a TimeoutExpired here
        assert_one_line_error(done, name, "is a FIFO, not a file")


@pytest.mark.parametrize("change, fragment", [
    ({"test_accuracy": "abc"}, "test_accuracy should be a finite number, not 'abc'"),
    ({"test_accuracy": [1, 2, 3]}, "test_accuracy should be a finite number"),
    ({"test_accuracy": 1e308}, "test_accuracy should be a fraction in 0..1"),
    ({"test_accuracy": -5}, "test_accuracy should be a fraction in 0..1"),
    ({"lr": "x"}, "lr should be a finite number, not 'x'"),
    ({"seconds": -1.0}, "seconds should be a number of seconds >= 0"),
])
def test_every_metrics_value_is_typed_and_ranged_at_every_reader(cli, run, change, fragment):
    lines = (run / "metrics.jsonl").read_text().splitlines()
    lines[-1] = json.dumps({**json.loads(lines[-1]), **change})
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    for command in (["compare", run, "--out", run.parent], ["report", run],
                    ["train", "--resume", run, "--epochs", "3", "--force"]):
        assert_one_line_error(cli(*command), "metrics.jsonl line 2", fragment)


@pytest.mark.parametrize("change, fragment", [
    ({"test_accuracy": 7.0}, "test_accuracy should be a fraction in 0..1"),
    ({"train_seconds": "soon"}, "train_seconds should be a finite number"),
    ({"status": "x" * 100}, "status should be a short word"),
])
def test_summary_values_are_typed_and_ranged(cli, run, change, fragment):
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, **change}))
    for command in (["compare", run, "--out", run.parent], ["train", "--resume", run]):
        assert_one_line_error(cli(*command), "summary.json", fragment)


@pytest.mark.parametrize("name, commands", [
    ("metrics.jsonl", (["compare"], ["report"])), ("summary.json", (["compare"], ["train", "--resume"])),
    ("config.json", (["compare"], ["train", "--resume"])), ("model.json", (["evaluate"], ["train", "--resume"])),
])
def test_bytes_that_are_not_utf8_are_one_line(cli, run, name, commands):
    (run / name).write_bytes((run / name).read_bytes()[:-3] + b"\xff\xfe\n")
    for command in commands:
        assert_one_line_error(cli(*command, run), name, "not ")


def test_a_class_name_of_two_megabytes_is_refused_by_the_schema(cli, run):
    info = json.loads((run / "model.json").read_text())
    info["classes"][0] = "c" * (2 << 20)
    (run / "model.json").write_text(json.dumps(info))
    for command in (["evaluate", run, "--per-class"], ["report", run]):
        result = cli(*command)
        assert_one_line_error(result, "model.json", "classes[0] should be a name of 1..255 characters")
        assert len(result.out) < 1000


def _poison_weights(run, value=float("nan")):
    from safetensors.numpy import load_file, save_file

    arrays = load_file(str(run / "model.safetensors"))
    first = sorted(arrays)[0]
    arrays[first] = arrays[first].copy()
    arrays[first].flat[0] = value
    save_file(arrays, str(run / "model.safetensors"))
    return first


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nan_weights_are_a_failure_at_every_command(cli, run, tmp_path, value):
    """evaluate printed 'accuracy 10.00%, loss nan' (exit 0), predict 'Bag nan%' (exit 0), export blamed the
    exporter: each is now one line naming the weights, exit 1."""
    from PIL import Image

    name = _poison_weights(run, value)
    image = tmp_path / "x.png"
    Image.new("L", (8, 8)).save(image)
    for command in (["evaluate", run], ["predict", run, image], ["export", run, "--format", "onnx", "--out", tmp_path / "m.onnx"]):
        result = cli(*command)
        errors = [line for line in result.err.splitlines() if "run failed" in line]
        assert result.code == 1 and len(errors) == 1, result.err
        assert "NaN or infinite weights" in errors[0] and name in errors[0] and "lower --lr" in errors[0]
        assert "Traceback" not in result.err and "nan%" not in result.out


@pytest.mark.parametrize("name, shown", [
    ("\x1b[2J\x1b]0;pwned\x07", "\\x1b[2J\\x1b]0;pwned\\x07"),
    ("two\nlines", "two\\nlines"),
    ("evil\u202egpj.png", "evil\\u202egpj.png"),
])
def test_names_from_files_cannot_drive_the_terminal(cli, run, tmp_path, name, shown):
    from PIL import Image

    info = json.loads((run / "model.json").read_text())
    info["classes"][0] = name
    (run / "model.json").write_text(json.dumps(info))
    evaluated = cli("evaluate", run, "--per-class")
    assert evaluated.code == 0 and shown in evaluated.out and name not in evaluated.out
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("L", (8, 8)).save(folder / f"{name.replace(chr(10), '_')}.png")
    predicted = cli("predict", run, folder, "--top-k", "4")
    assert predicted.code == 0 and shown.replace("\\n", "_") in predicted.out
    assert not any(c in predicted.out for c in "\x1b\x07\u202e")


def test_a_partial_failure_of_predict_exits_non_zero(cli, run, tmp_path):
    from PIL import Image

    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.new("L", (8, 8)).save(folder / "good.png")
    (folder / "notes.png").write_text("not an image")
    result = cli("predict", run, folder)
    assert result.code == 1 and "good.png: " in result.out and "notes.png: error:" in result.out
    assert "1 of 2 file(s) could not be predicted" in result.err


@pytest.mark.parametrize("expression, shapes, fragment", [
    ("sum(w @ w.T)", ["w=20000x1"], "result of shape (20000, 20000) (400,000,000 numbers; w 20000x1)"),
    ("sum(w @ w.T)", ["w=30000x1"], "result of shape (30000, 30000)"),
    ("x+y", ["x=1000000x1", "y=1x1000000"], "result of shape (1000000, 1000000)"),
    ("relu(x * y.T) + 1", ["x=3000x1", "y=3000x1"], "result of shape (3000, 3000) (9,000,000 numbers"),
])
def test_graph_refuses_a_result_too_large_before_computing_it(cli, tmp_path, expression, shapes, fragment):
    args = [a for s in shapes for a in ("--shape", s)]
    tracemalloc.start()
    try:
        result = cli("graph", expression, *args, "--backward", "--out", tmp_path / "g.svg")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert_one_line_error(result, fragment, "at most 4,000,000 numbers per result")
    assert peak < 64 << 20, peak  # the 20000x1 case peaked at 12.5 GB before
    assert not (tmp_path / "g.svg").exists()


def test_graph_shapes_follow_numpy_for_results_it_draws():
    import numpy as np

    from deepdive.viz.graph_shapes import matmul_shape

    for a, b in [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 5)),
                 ((7, 1, 3, 4), (6, 4, 2))]:
        assert matmul_shape(a, b) == np.matmul(np.zeros(a), np.zeros(b)).shape
    with pytest.raises(ValueError):
        matmul_shape((3, 4), (5, 2))


def test_graph_of_numbers_alone_says_so(cli, tmp_path):
    assert_one_line_error(cli("graph", "2**2**100", "--out", tmp_path / "g.svg"), "(no variables)",
                          "2 ** 1.26765e+30 is not a finite number")


def test_class_names_that_look_like_formulas_are_drawn_as_text(cli, tmp_path, figures_on):
    """A class folder named $100_$200 (mathtext would parse it and fail) trains, draws every figure, and reports;
    nothing of matplotlib reaches stderr."""
    from test_data_imagefolder import make_tree

    make_tree(tmp_path / "data", per_class=4, classes=("$100_$200", "$\\nosuchcommand{$", "plain"))
    out = tmp_path / "run"
    trained = cli("train", "--model", "perceptron", "--dataset", "imagefolder", "--data-dir", tmp_path / "data",
                  "--image-size", "8", "--epochs", "1", "--out", out)
    assert trained.code == 0, trained.err
    assert "ParseSyntaxException" not in trained.err and "matplotlib" not in trained.err
    assert {p.name for p in (out / "figures").glob("*.png")} >= {"confusion.png", "per_class.png"}
    report = cli("report", out, "--json")
    assert report.code == 0 and "Traceback" not in report.err, report.err
    page = (out / "report.html").read_text()
    assert "$100_$200" in page and "$\\nosuchcommand{$" in page


def test_a_figures_link_out_of_the_run_gets_nothing_written(cli, run, tmp_path):
    import shutil

    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.rmtree(run / "figures", ignore_errors=True)
    (run / "figures").symlink_to(outside)
    result = cli("report", run)
    assert_one_line_error(result, "figures is a symbolic link to", "deepdive writes only inside the run folder")
    assert list(outside.iterdir()) == []


def test_report_on_a_full_disk_names_a_fix_it_has(run):
    """report has no --out: its message on a failed write must not send the user to one."""
    import resource
    import signal
    import sys

    from test_hostile import run_measured

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill, as a full disk refuses writes
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    code, err, _ = run_measured(["report", run], preexec=small_files)
    assert code == 2 and "Traceback" not in err, err
    assert "cannot write" in err and "--out" not in err and "free disk space or make the folder writable" in err


@pytest.mark.parametrize("argv, fragment", [
    (["--jobs", "4"], "--jobs 4 runs several seeds at once: add --seeds"),
    (["--seeds", "0-2", "--seed", "5"], "--seed and --seeds cannot be combined"),
])
def test_reproduce_refuses_flags_that_would_have_no_effect(cli, tmp_path, argv, fragment):
    assert_one_line_error(cli("reproduce", "article", "--out", tmp_path / "o", *argv), fragment)
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(not __import__("conftest").FASHION_DIR.exists(), reason="apt-get install dataset-fashion-mnist")
def test_the_folder_fashion_mnist_is_read_from_is_named(tmp_path, caplog):
    from deepdive.data.mnist import DEBIAN_FASHION, find_files

    with caplog.at_level("INFO", logger="deepdive"):
        files = find_files("fashion-mnist", tmp_path)
    assert all(p.parent == DEBIAN_FASHION for p in files.values())
    assert f"no idx files under {tmp_path}; reading Debian's copy in {DEBIAN_FASHION}" in caplog.text


def test_the_cifar_copy_warning_is_said_once_for_the_same_files(tmp_path, caplog):
    from cifar_files import write_cifar

    from deepdive.data.datasets import DataOptions, load_dataset

    write_cifar(tmp_path, per_batch=10)
    said = []
    for _ in range(2):
        caplog.clear()
        with caplog.at_level("WARNING", logger="deepdive"):
            load_dataset("cifar10", DataOptions(data_dir=str(tmp_path), download=False))
        said.append([r.getMessage() for r in caplog.records if "differ from the official" in r.getMessage()])
    assert len(said[0]) == 1 and "said once for these files" in said[0][0] and said[1] == []


def test_resuming_a_finished_run_says_so_once(run):
    done = run_subprocess("train", "--resume", run)
    assert done.returncode == 0
    assert (done.stdout + done.stderr).count("nothing to resume") == 1, done.stdout + done.stderr


def test_the_api_says_a_folder_is_a_folder(run, tmp_path):
    import deepdive
    from deepdive.errors import UserError

    predictor = deepdive.load(run)
    (tmp_path / "pics").mkdir()
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(UserError, match="a folder, not an image file"):
        predictor([tmp_path / "pics"])
    with pytest.raises(UserError, match="not a regular file"):  # and never opened: a FIFO would block
        predictor([tmp_path / "pipe.png"])
    with pytest.raises(UserError, match="no such file"):
        predictor([tmp_path / "missing.png"])


def test_plain_text_is_drawn_literally_and_math_stays_on_for_the_axes():
    from deepdive.viz.figures import plain, pyplot

    plt = pyplot()
    fig, ax = plt.subplots()
    try:
        ax.set_title("$\\nosuchcommand{$")
        with pytest.raises(ValueError):  # what a class name did to a figure before
            fig.canvas.draw()
        ax.set_title(plain("$\\nosuchcommand{$ and $100_$200"))
        ax.set_xscale("log")
        ax.set_xlim(1, 1000)
        fig.canvas.draw()  # the class names drawn as text; the log axis's formula ticks still render
        assert plt.rcParams["text.parse_math"] is True
    finally:
        plt.close(fig)
