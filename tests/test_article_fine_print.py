"""The article's fine print: Net's layer order, the optimizers' formulas as documented, and the
reproduction end to end (issue: the article, checked)."""
import json

import numpy as np
import pytest
import torch
from torch import nn

from cifar_files import write_cifar


def article_sequential(classes=10):
    """The article's CNN as one nn.Sequential, layer by layer: ReLU after the first three convolutions
    only, global average pooling, 64 -> 32 with ReLU, Dropout(0.5), 32 -> classes."""
    return nn.Sequential(nn.Conv2d(3, 64, 3), nn.ReLU(), nn.Conv2d(64, 128, 3), nn.ReLU(), nn.Conv2d(128, 128, 3),
                         nn.ReLU(), nn.Conv2d(128, 64, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 32),
                         nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, classes))


def test_net_computes_the_articles_layers_in_their_order():
    from deepdive.models.registry import build_model
    net = build_model("article-cnn", nn, torch.nn.functional, (3, 32, 32), 10)
    reference = article_sequential()
    layers = [m for m in reference if isinstance(m, (nn.Conv2d, nn.Linear))]
    ours = [net.conv1, net.conv2, net.conv3, net.conv4, net.fc1, net.fc2]
    for theirs, mine in zip(layers, ours):
        theirs.load_state_dict(mine.state_dict())
    x = torch.randn(4, 3, 32, 32)
    net.eval(), reference.eval()
    assert torch.equal(net(x), reference(x))  # a ReLU added after conv4, or one removed, changes these
    conv4_out = net.conv4(net.conv3(torch.relu(net.conv2(torch.relu(net.conv1(x))))).relu())
    assert (conv4_out < 0).any()  # (so a ReLU after conv4 would show)
    net.train(), reference.train()
    torch.manual_seed(5)
    a = net(x)
    torch.manual_seed(5)
    assert torch.equal(a, reference(x))  # dropout on the 32 features after fc1's ReLU, with the same mask


def test_adagrad_adds_epsilon_after_the_square_root_as_documented():
    from deepdive.scratch import Tensor
    from deepdive.scratch.optim import Adagrad
    theta = Tensor(np.array([1.0, -2.0]), requires_grad=True)
    opt = Adagrad([theta], lr=0.5, eps=1.0)  # a large ε tells √G + ε from √(G + ε)
    g = np.array([0.3, 4.0])
    theta.grad = g.copy()
    opt.step()
    assert np.allclose(theta.data, np.array([1.0, -2.0]) - 0.5 * g / (np.sqrt(g * g) + 1.0))
    assert not np.allclose(theta.data, np.array([1.0, -2.0]) - 0.5 * g / np.sqrt(g * g + 1.0))


def test_reproduce_article_end_to_end_on_a_tiny_subset(cli, tmp_path):
    write_cifar(tmp_path / "data", per_batch=20)
    result = cli("reproduce", "article", "--data-dir", tmp_path / "data", "--epochs", "1", "--limit-train", "48",
                 "--limit-test", "20", "--out", tmp_path / "run", "--json")
    assert result.code == 0, result.err
    summary = result.json()
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["normalization"], config["batch_size"], config["optimizer"], config["lr"]) == \
        ("mnist", 16, "adam", 1e-3)
    assert config["model"] == "article-cnn" and summary["article"]["test_accuracy"] == 0.612
    assert 0 <= summary["test_accuracy"] <= 1 and 0 <= summary["test_accuracy_train_mode"] <= 1
    record = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert record["train_loss_last_block"] == pytest.approx(record["train_loss"], rel=1e-12)  # 3 full batches
    assert "last 1,000-batch block" in result.err and "cannot come from its printed code" in result.err


def test_the_article_window_is_its_last_printed_block_of_1000_batches():
    from deepdive.training.train_state import TrainState
    state = TrainState()
    state.begin_epoch(None)
    for i in range(3125):  # the article's epoch: 50,000 images in batches of 16
        state.record_step(float(i), 16)
    assert state.article_window_loss() == np.mean(np.arange(2000, 3000))  # printed after batch 3,000
    assert state.loss_sum / state.seen == np.mean(np.arange(3125))
    state.begin_epoch(None)
    for i in range(10):
        state.record_step(float(i), 16)
    assert state.article_window_loss() == np.mean(np.arange(10))  # a short epoch: its mean stands in


def test_reproduce_over_seeds_reports_the_distribution(cli, tmp_path):
    write_cifar(tmp_path / "data", per_batch=20)
    result = cli("reproduce", "article", "--data-dir", tmp_path / "data", "--epochs", "1", "--limit-train", "32",
                 "--limit-test", "20", "--seeds", "0-1,3", "--out", tmp_path / "seeds", "--json")
    assert result.code == 0, result.err
    d = result.json()
    assert d["seeds"] == [0, 1, 3]
    summaries = [json.loads((tmp_path / "seeds" / f"seed-{s}" / "summary.json").read_text()) for s in (0, 1, 3)]
    for key in ("test_accuracy", "test_accuracy_train_mode"):
        values = [s[key] for s in summaries]
        assert d[key]["values"] == values
        assert d[key]["mean"] == pytest.approx(np.mean(values)) and d[key]["std"] == pytest.approx(np.std(values, ddof=1))
    losses = [json.loads((tmp_path / "seeds" / f"seed-{s}" / "metrics.jsonl").read_text())["train_loss"]
              for s in (0, 1, 3)]
    assert d["train_loss"][0]["mean"] == pytest.approx(np.mean(losses))
    assert len(set(losses)) == 3  # three seeds, three different runs
    assert "over 3 seeds:" in result.err and "of 3 seeds reached it" in result.err
    assert json.loads((tmp_path / "seeds" / "distribution.json").read_text())["seeds"] == [0, 1, 3]
    from conftest import assert_one_line_error
    assert_one_line_error(cli("reproduce", "article", "--seeds", "3-1"), "--seeds")


def test_seeds_in_separate_processes_get_the_same_flags(monkeypatch, tmp_path):
    """--jobs J > 1 runs each seed as `deepdive train ...`: its argv must parse to exactly the flags given."""
    import subprocess
    from deepdive.teach import article_seeds as reproduce_seeds
    from deepdive.commands.train_flags import parse_train_flags
    seen = {}

    def fake_run(argv, **kwargs):
        seen["argv"] = argv
        return subprocess.CompletedProcess(argv, 0, stdout=json.dumps({"run": "x"}), stderr="")
    monkeypatch.setattr(reproduce_seeds.subprocess, "run", fake_run)
    flags = {"recipe": "article", "data_dir": "some/data", "epochs": 3, "device": "cpu", "limit_train": 64,
             "limit_test": None, "download": False}
    reproduce_seeds._in_a_process(flags, 7, tmp_path / "seed-7", overwrite=True)
    argv = seen["argv"]
    assert argv[argv.index("train") - 1] == "-q" and "--overwrite" in argv
    given = argv[argv.index("train") + 1:]
    parsed = parse_train_flags([a for a in given if a not in ("--json", "--overwrite")])
    assert parsed == {"recipe": "article", "data_dir": "some/data", "epochs": 3, "device": "cpu", "limit_train": 64,
                      "download": False, "seed": 7, "out": str(tmp_path / "seed-7")}
