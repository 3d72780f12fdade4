"""Run folders that cannot be lost: --overwrite only replaces a run folder no process holds, replacement
puts the old run back when the new one fails early, and a resume that fails changes no byte."""
import hashlib
import json
import os
import signal

import pytest

from conftest import SYNTH, assert_one_line_error
from test_resume import spawn, wait_for


def snapshot(folder):
    """Every file under ``folder`` (hidden ones too) with the SHA-256 of its bytes."""
    out = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            out[os.path.relpath(path, folder)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return out


def train(cli, out, *args):
    result = cli("train", *SYNTH, "--epochs", "1", "--out", out, *args)
    assert result.code == 0, result.err
    return result


def test_overwrite_refuses_a_folder_that_is_not_a_run(cli, tmp_path):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    result = cli("train", *SYNTH, "--epochs", "1", "--out", folder, "--overwrite")
    assert_one_line_error(result, "not a deepdive run folder", "thesis.tex", "nothing was deleted")
    assert (folder / "thesis.tex").read_text() == "years of work"
    # a run folder with a user's file dropped in is not replaced either
    run = tmp_path / "run"
    train(cli, run)
    (run / "notes.txt").write_text("mine")
    assert_one_line_error(cli("train", *SYNTH, "--out", run, "--overwrite"), "notes.txt")
    assert (run / "notes.txt").exists() and (run / "config.json").exists()


def test_overwrite_refuses_the_dataset_it_trains_on(cli, tmp_path):
    from test_data_imagefolder import make_tree
    root = make_tree(tmp_path / "tree", per_class=3)
    before = snapshot(root)
    result = cli("train", "--dataset", "imagefolder", "--data-dir", root, "--image-size", "8", "--model",
                 "perceptron", "--epochs", "1", "--out", root, "--overwrite")
    assert_one_line_error(result, "not a deepdive run folder")
    assert snapshot(root) == before


def test_an_empty_folder_is_used_as_it_is(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    train(cli, tmp_path / "empty")
    assert (tmp_path / "empty" / "summary.json").exists()


def test_overwrite_replaces_a_run_and_deletes_the_old_one_after_the_first_checkpoint(cli, tmp_path):
    run = tmp_path / "run"
    train(cli, run, "--seed", "1")
    old_weights = (run / "model.safetensors").read_bytes()
    train(cli, run, "--seed", "2", "--overwrite")
    assert json.loads((run / "config.json").read_text())["seed"] == 2
    assert (run / "model.safetensors").read_bytes() != old_weights
    assert sorted(os.listdir(tmp_path)) == ["run"]  # the old run, set aside, is gone


def test_overwrite_puts_the_old_run_back_when_the_new_one_fails_before_a_checkpoint(cli, tmp_path):
    run = tmp_path / "run"
    train(cli, run)
    before = snapshot(run)
    result = cli("train", *SYNTH, "--optimizer", "sgd", "--lr", "1e30", "--out", run, "--overwrite")
    assert result.code == 1 and "diverged" in result.err and "put back" in result.err
    assert snapshot(run) == before
    assert sorted(os.listdir(tmp_path)) == ["run"]


def test_two_overwrites_of_one_folder_one_runs_the_other_is_refused(cli, tmp_path):
    """Two `--overwrite` runs on one run folder: the first holds it (paused at step 3, the old run set
    aside), the second - and a resume - are refused and change nothing; the first completes."""
    run, marker = tmp_path / "run", tmp_path / "paused"
    train(cli, run, "--seed", "1")
    first = spawn("train", *SYNTH, "--epochs", "2", "--seed", "2", "--out", run, "--overwrite",
                  pause_at="step:3", marker=marker)
    wait_for(marker, first)
    before = snapshot(tmp_path)
    for args in (["train", *SYNTH, "--epochs", "2", "--out", run, "--overwrite"], ["train", "--resume", run]):
        second = spawn(*args)
        _, err = second.communicate(timeout=120)
        second.code, second.err = second.returncode, err
        assert_one_line_error(second, "in use by another deepdive process")
    assert snapshot(tmp_path) == before
    marker.unlink()  # the first run goes on
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"
    assert json.loads((run / "config.json").read_text())["seed"] == 2
    assert sorted(os.listdir(tmp_path)) == ["run"]  # the replaced run went with the first checkpoint


def test_a_stale_lock_after_a_crash_does_not_block(tmp_path):
    run, marker = tmp_path / "run", tmp_path / "paused"
    first = spawn("train", *SYNTH, "--epochs", "2", "--out", run, pause_at="checkpoint:1", marker=marker)
    wait_for(marker, first)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=60)
    resumed = spawn("train", "--resume", run)
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err


@pytest.mark.parametrize("change, fragment", [
    (["--model", "article-cnn"], "needs images of at least 9x9"),  # refused when the model is built
    (["--model", "perceptron"], "model.json: model is 'simplenet' but this resume builds 'perceptron'"),
    (["--engine", "scratch"], "state.pt does not fit this run"),
    (["--synthetic-shape", "1,9,9"], "input_shape is [1, 8, 8] but this resume builds [1, 9, 9]"),
    (["--optimizer", "sgd"], "state.pt does not fit this run"),  # adam's state into sgd
])
def test_a_failed_forced_resume_changes_no_byte(cli, tmp_path, change, fragment):
    run = tmp_path / "run"
    train(cli, run)
    summary = json.loads((run / "summary.json").read_text())
    summary["status"] = "interrupted"  # so that resume has work to do
    (run / "summary.json").write_text(json.dumps(summary))
    (run / ".state.pt.abc123.tmp").write_bytes(b"half a checkpoint")  # a killed write's leftover
    before = snapshot(run)
    result = cli("train", "--resume", run, "--force", "--epochs", "2", *change)
    assert_one_line_error(result, fragment)
    assert snapshot(run) == before


def test_resume_removes_orphan_temp_files(cli, tmp_path):
    run = tmp_path / "run"
    train(cli, run)
    (run / ".state.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    (run / ".model.safetensors.x1.tmp").write_bytes(b"half")
    assert cli("train", "--resume", run, "--force", "--epochs", "2").code == 0
    assert not [n for n in os.listdir(run) if n.endswith(".tmp")]


def test_resume_of_a_file_says_it_is_a_file(cli, tmp_path):
    (tmp_path / "f").write_text("x")
    assert_one_line_error(cli("train", "--resume", tmp_path / "f"), "is a file, not a run folder")


@pytest.mark.parametrize("plant", [
    lambda run: (run / "checkpoints").mkdir() or (run / "checkpoints" / "notes.txt").write_text("mine"),
    lambda run: (run / "checkpoints").mkdir() or (run / "checkpoints" / "inner").mkdir()
    or (run / "checkpoints" / "inner" / "config.json").write_text("{}"),  # another run, nested
    lambda run: (run / ".thesis.final.tmp").write_text("mine"),  # a temp-looking name of no run file
    lambda run: (run / "report.html").mkdir(),  # a run file's name on a folder
    lambda run: (run / "config.json").write_text('{"name": "my-web-app"}'),  # not a run's config
])
def test_overwrite_checks_what_a_run_folder_holds_not_just_names(cli, tmp_path, plant):
    run = tmp_path / "run"
    train(cli, run)
    plant(run)
    before = snapshot(run)
    assert_one_line_error(cli("train", *SYNTH, "--out", run, "--overwrite"), "not a deepdive run folder")
    assert snapshot(run) == before


def test_overwrite_refuses_a_symlink_and_the_folder_it_runs_in(cli, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(cli, run)
    (tmp_path / "link").symlink_to(run)
    assert_one_line_error(cli("train", *SYNTH, "--out", tmp_path / "link", "--overwrite"), "symbolic link")
    monkeypatch.chdir(run)
    assert_one_line_error(cli("train", *SYNTH, "--out", ".", "--overwrite"), "holds the current folder")
    assert (run / "config.json").exists() and sorted(os.listdir(tmp_path)) == ["link", "run"]


def test_interrupt_before_the_new_runs_first_epoch_puts_the_old_run_back(tmp_path, caplog):
    """An --overwrite run stopped mid-epoch 1 wrote a checkpoint but no epoch: the old run comes back."""
    from deepdive.config.resolve import resolve_config
    from deepdive.errors import Interrupted
    from deepdive.training.setup import run_training
    from deepdive.commands.train_flags import parse_train_flags

    run = tmp_path / "run"
    run_training(resolve_config(parse_train_flags([*SYNTH, "--epochs", "1", "--out", str(run)])))
    before = snapshot(run)

    def interrupt(point, n):
        if point == "step" and n == 2:
            os.kill(os.getpid(), signal.SIGINT)  # the handler sets the stop flag; the loop stops after the step

    with pytest.raises(Interrupted), caplog.at_level("WARNING", logger="deepdive"):
        run_training(resolve_config(parse_train_flags([*SYNTH, "--epochs", "3", "--out", str(run)])),
                     overwrite=True, hooks=interrupt)
    assert "previous run was put back" in caplog.text
    assert snapshot(run) == before and sorted(os.listdir(tmp_path)) == ["run"]


def test_a_killed_overwrite_leaves_the_old_run_aside_and_says_so(cli, tmp_path, caplog):
    run = tmp_path / "run"
    train(cli, run)
    os.rename(run, tmp_path / ".run.replaced-1-2")  # what a SIGKILL before the first epoch leaves
    train(cli, run)
    with caplog.at_level("WARNING", logger="deepdive"):
        assert cli("train", "--resume", run).code == 0
    assert ".run.replaced-1-2 is a run an earlier --overwrite" in caplog.text


def test_resume_refuses_flags_it_cannot_honour_and_records_where_the_run_is(cli, tmp_path):
    import shutil
    run = tmp_path / "run"
    train(cli, run)
    assert_one_line_error(cli("train", "--resume", run, "--overwrite"), "--overwrite cannot be combined")
    assert_one_line_error(cli("train", "--resume", run, "--force", "--recipe", "fast"), "--recipe cannot be combined")
    shutil.move(run, tmp_path / "moved")
    assert cli("train", "--resume", tmp_path / "moved", "--force", "--epochs", "2").code == 0
    assert json.loads((tmp_path / "moved" / "summary.json").read_text())["run"] == str(tmp_path / "moved")


def test_resume_refuses_a_model_json_that_disagrees_with_the_run(cli, tmp_path):
    run = tmp_path / "run"
    train(cli, run)
    info = json.loads((run / "model.json").read_text())
    info["classes"] = ["a", "b"]
    (run / "model.json").write_text(json.dumps(info))
    before = snapshot(run)
    assert_one_line_error(cli("train", "--resume", run, "--force", "--epochs", "2"), "model.json", "classes")
    assert snapshot(run) == before


def test_a_run_with_one_mean_and_std_for_all_channels_evaluates_and_resumes(cli, tmp_path):
    """The article's recipe normalizes CIFAR's three channels with MNIST's one mean and std: model.json
    holds one value for all channels, and every command that opens the run must accept it (they refused it
    as a damaged folder), while two values for three channels stay refused."""
    out = tmp_path / "run"
    shape = ["--dataset", "synthetic", "--synthetic-shape", "3,8,8", "--synthetic-classes", "4"]
    trained = cli("train", *shape, "--normalization", "mnist", "--epochs", "1", "--out", out, "--json")
    assert trained.code == 0, trained.err
    info = json.loads((out / "model.json").read_text())
    assert (info["mean"], info["std"]) == ([0.1307], [0.3081])
    evaluated = cli("evaluate", out, "--json")
    assert evaluated.code == 0, evaluated.err
    assert evaluated.json()["test_accuracy"] == trained.json()["test_accuracy"]
    resumed = cli("train", "--resume", out, "--epochs", "2", "--force", "--json")
    assert resumed.code == 0 and resumed.json()["epochs"] == 2, resumed.err
    info["std"] = [0.3, 0.3]
    (out / "model.json").write_text(json.dumps(info))
    assert_one_line_error(cli("evaluate", out), "model.json", "std has 2 items, should have 3..3")
