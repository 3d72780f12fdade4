"""``--tensorboard`` logging, checked by reading the event files back with TensorBoard's own reader."""
import logging
import sys

import numpy as np
import pytest

from deepdive.errors import UserError
from deepdive.training.tensorboard import open_writer

torch = pytest.importorskip("torch")
pytest.importorskip("tensorboard")

RECORDS = {
    1: {"train_loss": 1.5, "test_loss": 1.25, "test_accuracy": 0.5, "val_loss": None, "images_per_second": 800.0},
    2: {"train_loss": 0.75, "test_loss": 0.875, "test_accuracy": 0.625, "val_loss": 0.9, "val_accuracy": 0.6,
        "images_per_second": 1000.0},
}
LRS = {1: 0.1, 2: 0.05}


def read_events(folder):
    """Everything in the folder, as TensorBoard would load it (no sampling: size 0 keeps all)."""
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(str(folder), size_guidance={ea.SCALARS: 0, ea.HISTOGRAMS: 0, ea.GRAPH: 0})
    acc.Reload()
    return acc


def write_two_epochs(run_dir, model, engine_name, example_input=None):
    tb = open_writer(run_dir, model, engine_name == "torch", example_input)  # (the engines' `traceable`)
    for epoch in (1, 2):
        tb.epoch(epoch, RECORDS[epoch], LRS[epoch], model)
    tb.close()
    tb.close()  # idempotent
    return read_events(run_dir / "tensorboard")


def check_histogram(acc, tag, array):
    hist = acc.Histograms(tag)[-1].histogram_value
    assert hist.num == array.size
    assert hist.sum == pytest.approx(float(np.sum(array, dtype=np.float64)), rel=1e-6, abs=1e-9)


def test_torch_scalars_histograms_and_graph(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x = torch.randn(2, 1, 2, 2)
    torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 2])).backward()

    acc = write_two_epochs(tmp_path, model, "torch", example_input=x)

    files = [p.name for p in (tmp_path / "tensorboard").iterdir()]
    assert files and all(name.startswith("events.out.tfevents.") for name in files)
    tags = acc.Tags()
    expected = {  # tag -> {step: value}
        "loss/train": {1: 1.5, 2: 0.75}, "loss/test": {1: 1.25, 2: 0.875},
        "accuracy/test": {1: 0.5, 2: 0.625}, "loss/val": {2: 0.9}, "accuracy/val": {2: 0.6},
        "throughput/images_per_second": {1: 800.0, 2: 1000.0}, "lr": LRS,
    }
    assert set(tags["scalars"]) == set(expected)
    for tag, by_step in expected.items():
        got = {e.step: e.value for e in acc.Scalars(tag)}
        assert got == pytest.approx(by_step), tag
    for name, p in model.named_parameters():
        assert [e.step for e in acc.Histograms(f"weights/{name}")] == [1, 2]
        check_histogram(acc, f"weights/{name}", p.detach().numpy())
        check_histogram(acc, f"gradients/{name}", p.grad.numpy())
    assert tags["graph"]
    assert "Linear" in str(acc.Graph())


def test_untraceable_model_loses_only_its_graph(tmp_path, caplog, capsys):
    model = torch.nn.Linear(4, 3)
    wrong_shape = torch.zeros(1, 5)  # tracing fails: the graph is skipped, the log goes on
    with caplog.at_level(logging.WARNING, logger="deepdive"):
        acc = write_two_epochs(tmp_path, model, "torch", example_input=wrong_shape)
    assert "graph was not written" in caplog.text
    assert capsys.readouterr().out == ""  # torch's own error print does not reach stdout
    assert not acc.Tags()["graph"]
    assert "loss/train" in acc.Tags()["scalars"]
    assert "weights/weight" in acc.Tags()["histograms"]
    assert "gradients/weight" not in acc.Tags()["histograms"]  # no backward pass: no gradients


def test_scratch_engine_histograms_without_graph(tmp_path):
    import deepdive.scratch as scratch
    import deepdive.scratch.nn as snn
    from deepdive.models.registry import build_model

    np.random.seed(0)
    model = build_model("simplenet", snn, snn.functional, (1, 8, 8), 4)
    images = scratch.Tensor(np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32))
    snn.functional.cross_entropy(model(images), np.array([0, 3])).backward()

    acc = write_two_epochs(tmp_path, model, "scratch", example_input=images)

    params = dict(model.named_parameters())
    assert params
    for name, p in params.items():
        check_histogram(acc, f"weights/{name}", p.data)
        check_histogram(acc, f"gradients/{name}", p.grad)
    assert not acc.Tags()["graph"]
    assert {e.step: e.value for e in acc.Scalars("lr")} == pytest.approx(LRS)


def test_missing_tensorboard_is_one_line_with_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # what an absent package looks like
    with pytest.raises(UserError) as raised:
        open_writer(tmp_path, torch.nn.Linear(2, 2), True)
    message = str(raised.value)
    assert "pip install" in message and "tensorboard" in message and "\n" not in message
    assert not (tmp_path / "tensorboard").exists()
