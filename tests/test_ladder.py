"""``deepdive ladder``: rungs that change one thing each, the top one the fast recipe, statistics checked by
hand, a resumed ladder that trains nothing twice, the page in a browser."""
import json
import math
import os
import shutil
from pathlib import Path

import pytest
import torch

from cifar_files import write_cifar
from conftest import assert_one_line_error

from deepdive.config.ladder import RUNGS, SCALES, rung_name, rung_values
from deepdive.config.resolve import resolve_config

TRAINING_KEYS_SET_BY_SCALE = {"recipe", "out", "epochs"}


@pytest.fixture(scope="module")
def fake_cifar(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    write_cifar(root, per_batch=40)  # 200 training and 40 test images
    return root


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_the_top_rung_is_the_fast_recipe(device):
    """Every value a run is trained and measured with is the same for the top rung and --recipe fast."""
    top = resolve_config({"recipe": rung_name(len(RUNGS) - 1), "device": device, "dataset": "cifar10"}).to_dict()
    fast = resolve_config({"recipe": "fast", "device": device, "dataset": "cifar10"}).to_dict()
    differing = {k for k in top if top[k] != fast[k]}
    assert differing <= TRAINING_KEYS_SET_BY_SCALE, {k: (top[k], fast[k]) for k in differing - {"out"}}


def test_the_bottom_rung_is_the_article_recipe():
    bottom = resolve_config({"recipe": "ladder-0"}).to_dict()
    article = resolve_config({"recipe": "article"}).to_dict()
    assert {k for k in bottom if bottom[k] != article[k]} <= {"recipe", "out"}
    assert RUNGS[0].reads == "test_accuracy_train_mode"


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_each_rung_changes_one_declared_thing(device):
    """Between neighbours, only the keys the upper rung declares change, and at least one of them does
    (bf16 on a CPU without native bf16 excepted: the rung then equals the one below, as it says)."""
    from deepdive.config.machine import cpu_has_native_bf16

    for i in range(1, len(RUNGS)):
        lower = resolve_config({"recipe": rung_name(i - 1), "device": device}).to_dict()
        upper = resolve_config({"recipe": rung_name(i), "device": device}).to_dict()
        changed = {k for k in upper if upper[k] != lower[k]} - {"recipe", "out"}
        assert changed <= set(RUNGS[i].change), (i, changed)
        no_op = RUNGS[i].bf16_on_cpu and device == "cpu" and not cpu_has_native_bf16()
        assert bool(changed) != no_op, (i, changed)
    assert all(RUNGS[i].reason and RUNGS[i].title for i in range(len(RUNGS)))


def test_a_rung_trains_from_the_command_line_as_a_recipe(cli, tmp_path, fake_cifar):
    out = tmp_path / "run"
    r = cli("train", "--recipe", "ladder-6", "--data-dir", fake_cifar, "--device", "cpu", "--epochs", "1",
            "--out", out, "--json")
    assert r.code == 0, r.err
    config = json.loads((out / "config.json").read_text())
    assert (config["model"], config["whiten"], config["identity_init"], config["optimizer"]) == \
        ("fastnet", False, False, "adam")
    assert json.loads((out / "model.json").read_text())["options"]["identity_init"] is False


@pytest.mark.parametrize("identity", [True, False])
def test_identity_init_sets_the_block_convolutions_to_dirac_or_not(identity):
    from deepdive.models.registry import build_model

    torch.manual_seed(0)
    model = build_model("fastnet", torch.nn, torch.nn.functional, (3, 32, 32), 10, widths=(16, 32),
                        whiten=False, identity_init=identity)
    for block in model.blocks:
        for conv in (block.conv1, block.conv2):
            w = conv.weight.detach()
            k = min(w.shape[0], w.shape[1])
            dirac = torch.nn.init.dirac_(torch.empty_like(w[:k]))
            assert torch.equal(w[:k], dirac) == identity


def test_counted_flops_agree_with_the_article_cnn_by_hand():
    """2 FLOPs per multiply-add: conv = 2·Cin·9·Cout·H'·W'; training = forward + the weight gradients of every
    layer + the input gradients of all but the first (the images need none)."""
    from deepdive.teach.ladder import flops_of

    convs = [2 * 3 * 9 * 64 * 30 * 30, 2 * 64 * 9 * 128 * 28 * 28, 2 * 128 * 9 * 128 * 26 * 26,
             2 * 128 * 9 * 64 * 24 * 24]
    forward = sum(convs) + 2 * 64 * 32 + 2 * 32 * 10
    counted = flops_of(0)
    assert counted["test_flops_per_image"] == forward and counted["test_views"] == 1
    assert counted["training_flops_per_image"] == 3 * forward - convs[0]
    assert flops_of(len(RUNGS) - 1)["test_views"] == 4  # the top rung's flip-shift TTA: four views


def test_change_from_below_is_the_paired_difference_with_students_t():
    from deepdive.teach.ladder import change_from_below

    d = change_from_below([0.5, 0.6, 0.7], [0.4, 0.55, 0.6])  # differences 0.1, 0.05, 0.1
    mean = 0.25 / 3
    sd = math.sqrt(((0.1 - mean) ** 2 * 2 + (0.05 - mean) ** 2) / 2)
    assert d["mean"] == pytest.approx(mean) and d["se"] == pytest.approx(sd / math.sqrt(3))
    assert d["interval"] == pytest.approx([mean - 4.303 * sd / math.sqrt(3), mean + 4.303 * sd / math.sqrt(3)])
    assert d["verdict"] == "gain"
    assert change_from_below([0.4, 0.55, 0.6], [0.5, 0.6, 0.7])["verdict"] == "loss"
    assert change_from_below([0.5, 0.6, 0.4], [0.45, 0.62, 0.41])["verdict"] == "within noise"
    assert change_from_below([0.5, 0.6], [0.5, 0.6])["verdict"] == "no change"
    one = change_from_below([0.5], [0.4])
    assert one["mean"] == pytest.approx(0.1) and one["interval"] is None and "one seed" in one["verdict"]


def test_t95_follows_the_table():
    from deepdive.teach.ladder import t95

    assert (t95(1), t95(2), t95(9), t95(12), t95(29), t95(31)) == (12.706, 4.303, 2.262, 2.228, 2.086, 1.96)


def _crash_in_run(number: int):
    """make_hooks for run_ladder: the ``number``-th run (1-based) raises after its first epoch's checkpoint."""
    calls = []

    def make_hooks(stop):
        calls.append(1)
        mine = len(calls) == number

        def hook(point, n):
            if mine and (point, n) == ("checkpoint", 1):
                raise RuntimeError("the machine went away")
        return hook
    return make_hooks


def test_an_interrupted_ladder_continues_and_trains_nothing_twice(tmp_path, fake_cifar, monkeypatch):
    from deepdive.teach.ladder import run_ladder

    monkeypatch.setitem(SCALES, "tiny", {**SCALES["tiny"], "limit_train": 48, "limit_test": 20, "epochs": 2})
    out = tmp_path / "ladder"
    with pytest.raises(Exception, match="the machine went away"):
        run_ladder("tiny", [0, 1], out, str(fake_cifar), "cpu", [0, 1, 2], make_hooks=_crash_in_run(4))
    crashed = out / "ladder-2" / "seed-1"
    before = {p: p.read_bytes() for p in out.glob("*/seed-*/model.safetensors") if p.parent != crashed}
    first_epoch = (crashed / "metrics.jsonl").read_text()
    assert len(before) == 3 and first_epoch.count("\n") == 1  # three runs done, the fourth stopped after epoch 1

    result = run_ladder("tiny", [0, 1], out, str(fake_cifar), "cpu", [0, 1, 2])
    assert result["trained_now"] == [str(crashed)]
    assert all(p.read_bytes() == data for p, data in before.items())  # the finished runs were not touched
    metrics = (crashed / "metrics.jsonl").read_text()
    assert metrics.startswith(first_epoch) and metrics.count("\n") == 2  # resumed at epoch 2, not restarted
    again = run_ladder("tiny", [0, 1], out, str(fake_cifar), "cpu", [0, 1, 2])
    assert again["trained_now"] == []
    rows = {r["index"]: r for r in again["rungs"]}
    summaries = [json.loads((out / "ladder-0" / f"seed-{s}" / "summary.json").read_text()) for s in (0, 1)]
    assert rows[0]["values"] == [s["test_accuracy_train_mode"] for s in summaries]  # rung 0: train mode
    assert rows[1]["values"] == [s["test_accuracy"] for s in summaries]  # rung 1: the same runs, eval mode
    assert rows[1]["runs"] == rows[0]["runs"] and rows[1]["train_seconds"] == rows[0]["train_seconds"]
    two = [json.loads((out / "ladder-2" / f"seed-{s}" / "summary.json").read_text())["test_accuracy"] for s in (0, 1)]
    assert rows[2]["values"] == two and rows[2]["delta"]["mean"] == pytest.approx(
        sum(a - b for a, b in zip(two, rows[1]["values"])) / 2)


def test_a_ladder_folder_of_another_scale_is_refused(cli, tmp_path, fake_cifar):
    out = tmp_path / "ladder"
    assert cli("ladder", "--scale", "tiny", "--rungs", "2", "--seeds", "0", "--data-dir", fake_cifar,
               "--device", "cpu", "--out", out).code == 0
    r = cli("ladder", "--scale", "small", "--rungs", "2", "--seeds", "0", "--data-dir", fake_cifar,
            "--device", "cpu", "--out", out)
    assert r.code == 2 and "--limit-train 2500 differs from the run's 200" in r.err


@pytest.mark.parametrize("argv,fragments", [
    (["--rungs", "0-99"], ["--rungs '0-99' is invalid", "give rungs 0 to"]),
    (["--rungs", "x"], ["--rungs 'x' is invalid"]),
    (["--seeds", "3-1"], ["--seeds '3-1' is invalid"]),
    (["--scale", "huge"], ["invalid choice"]),
])
def test_bad_ladder_input_is_one_line(cli, tmp_path, argv, fragments):
    r = cli("ladder", "--out", tmp_path / "l", *argv)
    assert_one_line_error(r, *fragments)
    assert not (tmp_path / "l").exists()


def _peer(tmp_path, **changes):
    peer = {"airbench94": {"tta_accuracy": {"mean": 0.9061}, "train_seconds": {"mean": 431.5},
                           "seeds": [0, 1, 2], "where": "cpu, 2 threads"}}
    peer["airbench94"].update(changes)
    path = tmp_path / "peer.json"
    path.write_text(json.dumps(peer))
    return path


def test_peer_file_sets_the_measured_reference_and_bad_ones_are_one_line(tmp_path):
    from deepdive.commands.ladder import read_peer
    from deepdive.errors import UserError

    ref = read_peer(str(_peer(tmp_path)))
    assert (ref["test_accuracy"], ref["train_seconds"]) == (0.9061, 431.5) and "3 seed(s)" in ref["source"]
    for bad in ({"tta_accuracy": {"mean": 1.5}}, {"train_seconds": {"mean": -1}}, {"seeds": 3},
                {"tta_accuracy": "high"}):
        with pytest.raises(UserError, match="--peer"):
            read_peer(str(_peer(tmp_path, **bad)))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="is not a file"):  # and does not hang
        read_peer(str(fifo))
    (tmp_path / "bin").write_bytes(b"\xff\xfe{")
    with pytest.raises(UserError, match="cannot read it|is not bench"):
        read_peer(str(tmp_path / "bin"))


CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="apt-get install chromium chromium-driver")
def test_the_whole_ladder_at_tiny_scale_writes_its_table_json_figure_and_page(cli, tmp_path, fake_cifar):
    """Every rung, one seed: the JSON holds every rung with its figures, the PNG is a staircase, the page opens
    in headless Chromium with its image loaded, one table row per rung and every reference named."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    out = tmp_path / "ladder"
    r = cli("ladder", "--scale", "tiny", "--seeds", "0", "--data-dir", fake_cifar, "--device", "cpu",
            "--out", out, "--peer", _peer(tmp_path), "--json")
    assert r.code == 0, r.err
    result = r.json()
    assert [row["index"] for row in result["rungs"]] == list(range(len(RUNGS)))
    assert json.loads((out / "ladder.json").read_text())["rungs"] == result["rungs"]
    for row in result["rungs"]:
        assert row["seeds"] == [0] and row["train_seconds"]["mean"] > 0 and row["training_flops_per_image"] > 0
    assert "airbench94 on this copy (measured)" in [ref["name"] for ref in result["references"]]
    assert (out / "staircase.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "ladder-10" in r.err or "test-time augmentation" in r.err  # the table went to stderr with --json
    page = (out / "ladder.html").read_text()
    assert "http://" not in page and "https://" not in page
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        driver.get((out / "ladder.html").resolve().as_uri())
        widths = driver.execute_script("return Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
        rows = driver.execute_script("return document.querySelectorAll('tbody tr').length")
        text = driver.find_element("tag name", "body").text
    finally:
        driver.quit()
    assert widths == [1000] and rows == len(RUNGS)
    for ref in result["references"]:
        assert ref["name"] in text
    assert SCALES["tiny"]["about"] in text and "one seed: no spread" in text


def test_every_run_of_a_ladder_trains_on_the_threads_chosen_once(tmp_path, fake_cifar, monkeypatch):
    """Chosen between two runs, the thread count read the last run's spinning workers as a busy machine: one
    thread for some runs, two for others (measured: twice the seconds). The ladder chooses once, before any."""
    from deepdive.teach import ladder
    from deepdive.training import threads as threads_module

    calls = []
    monkeypatch.setattr(threads_module, "default_threads", lambda model=None, busy=None: calls.append(1) or 1)
    monkeypatch.setitem(SCALES, "tiny", {**SCALES["tiny"], "limit_train": 48, "limit_test": 20})
    result = ladder.run_ladder("tiny", [0, 1], tmp_path / "l", str(fake_cifar), "cpu", [8, 9])
    summaries = [json.loads((Path(r) / "summary.json").read_text()) for row in result["rungs"] for r in row["runs"]]
    assert len(summaries) == 4 and {s["threads"] for s in summaries} == {1} and len(calls) == 1


def test_overwrite_trains_every_run_again(cli, tmp_path, fake_cifar):
    out = tmp_path / "ladder"
    args = ["ladder", "--scale", "tiny", "--rungs", "9", "--seeds", "0", "--data-dir", fake_cifar, "--device", "cpu",
            "--out", out, "--json"]
    first = cli(*args)
    assert first.code == 0 and first.json()["trained_now"] == [str(out / "ladder-9" / "seed-0")]
    assert cli(*args).json()["trained_now"] == []
    assert cli(*args, "--overwrite").json()["trained_now"] == [str(out / "ladder-9" / "seed-0")]


def test_no_identity_init_flag_reaches_the_config():
    from deepdive.commands.train_flags import parse_train_flags

    assert resolve_config(parse_train_flags(["--model", "fastnet", "--no-identity-init"])).identity_init is False
    assert resolve_config(parse_train_flags(["--model", "fastnet"])).identity_init is True
