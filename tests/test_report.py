"""A run's pictures, tables and report: content checked, not just existence."""
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import FASHION_DIR, SYNTH, assert_one_line_error


def test_a_completed_run_draws_its_figures_and_tables(cli, tmp_path, figures_on):
    run = tmp_path / "run"
    result = cli("train", *SYNTH, "--epochs", "2", "--svg", "--out", run)
    assert result.code == 0, result.err
    sizes = {"curves": (1000, 400), "per_class": (1000, 400)}
    for name in ("curves", "confusion", "per_class", "mistakes"):
        with Image.open(run / "figures" / f"{name}.png") as image:
            assert image.format == "PNG" and image.width >= 800
            if name in sizes:
                assert image.size == sizes[name]
        assert (run / "figures" / f"{name}.svg").read_text().lstrip().startswith("<?xml")
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [list(r) for r in rows][0] == list(records[0])
    for row, record in zip(rows, records, strict=True):  # the CSV is the JSONL, value for value
        assert {k: ("" if v is None else str(v)) for k, v in record.items()} == row
    assert all(r["lr"] == 1e-3 for r in records)


def test_confusion_matrix_and_per_class_agree_with_evaluation(cli, tmp_path):
    from deepdive.inference.evaluate import confusion_matrix, open_run_for_test
    from deepdive.training.evaluation import evaluate_split, predictions_on
    run = tmp_path / "run"
    assert cli("train", *SYNTH, "--epochs", "1", "--limit-test", "200", "--out", run).code == 0
    _, cfg, info, engine, model, test = open_run_for_test(run, "cpu")
    preds, confidences, truths = predictions_on(engine, model, test)
    matrix = confusion_matrix(truths, preds, 4)
    _, accuracy = evaluate_split(engine, model, test)
    assert matrix.sum() == len(test) == 200 and np.trace(matrix) == round(accuracy * 200)
    assert (matrix.sum(1) == np.bincount(test.labels.numpy(), minlength=4)).all()
    assert ((0 < confidences) & (confidences <= 1)).all()
    result = cli("evaluate", run, "--per-class", "--json").json()
    table = result["per_class"]
    assert [r["images"] for r in table] == matrix.sum(1).tolist()
    assert [r["correct"] for r in table] == np.diag(matrix).tolist()
    assert sum(r["correct"] for r in table) == round(result["test_accuracy"] * 200)
    text = cli("evaluate", run, "--per-class").out
    assert "class-0" in text and "accuracy" in text


def test_progress_lines_when_the_output_is_not_a_terminal(tmp_path, caplog):
    """A line every --log-every seconds of the run's clock (injected: 1 s a step), with the bar's figures."""
    from deepdive.commands.train_flags import parse_train_flags
    from deepdive.config.resolve import resolve_config
    from deepdive.training.setup import run_training
    from test_fast import StepClock

    clock = StepClock(1.0)
    cfg = resolve_config(parse_train_flags([*SYNTH, "--epochs", "1", "--log-every", "10", "--out", str(tmp_path / "r")]))
    with caplog.at_level("INFO", logger="deepdive"):
        run_training(cfg, clock=clock, hooks=clock.hook)
    lines = [r.getMessage() for r in caplog.records if "step" in r.getMessage() and "ETA" in r.getMessage()]
    assert len(lines) == 3  # 32 steps of 1 s: at 10, 20 and 30 s
    assert lines[0].startswith("epoch 1: step 10/32 (31%), loss ") and "img/s, epoch ETA 0m22s" in lines[0]
    assert "64 img/s" in lines[0]  # 64 images a step, one step a second


def test_tensorboard_events_hold_the_runs_metrics(cli, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    run = tmp_path / "run"
    assert cli("train", *SYNTH, "--epochs", "2", "--tensorboard", "--out", run).code == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    accuracy = [(e.step, e.value) for e in events.Scalars("accuracy/test")]
    assert accuracy == [(r["epoch"], pytest.approx(r["test_accuracy"])) for r in records]
    assert [e.value for e in events.Scalars("loss/train")] == [pytest.approx(r["train_loss"]) for r in records]
    assert any(t.startswith("weights/") for t in events.Tags()["histograms"])
    assert any(t.startswith("gradients/") for t in events.Tags()["histograms"])


def test_tensorboard_missing_is_one_line(cli, tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    result = cli("train", *SYNTH, "--tensorboard", "--out", tmp_path / "run")
    assert_one_line_error(result, "pip install 'deepdive[tensorboard]'")
    assert not (tmp_path / "run").exists()


CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="apt-get install chromium chromium-driver")
@pytest.mark.skipif(not (FASHION_DIR / "t10k-labels-idx1-ubyte.gz").exists(), reason="apt-get install dataset-fashion-mnist")
def test_report_of_a_real_run_renders_in_chromium(cli, tmp_path):
    """A Fashion-MNIST run's report.html, opened from disk in headless Chromium: every image loaded,
    the headline numbers in the page's text, nothing fetched from the network."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    run = tmp_path / "run"
    assert cli("train", "--dataset", "fashion-mnist", "--data-dir", tmp_path, "--limit-train", "2000",
               "--limit-test", "500", "--epochs", "1", "--out", run).code == 0
    report = cli("report", run, "--json").json()
    page = (run / "report.html").read_text()
    assert "http://" not in page and "https://" not in page and page.count('src="data:image/png;base64,') == 4
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)  # a local driver: no download
    try:
        driver.get(Path(report["report"]).resolve().as_uri())
        widths = driver.execute_script("return Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
        text = driver.find_element("tag name", "body").text
    finally:
        driver.quit()
    assert len(widths) == 4 and all(w >= 800 for w in widths), widths
    assert f"test accuracy {100 * report['test_accuracy']:.2f}%" in text
    assert f"{report['test_loss']:.4f}" in text and "T-shirt/top" in text


def test_rosenblatt_and_parity_plots(cli, tmp_path):
    result = cli("rosenblatt", "--plot", "--out", tmp_path / "r.png", "--json")
    assert result.code == 0 and result.json()["figure"] == str(tmp_path / "r.png")
    with Image.open(tmp_path / "r.png") as image:
        assert image.format == "PNG" and image.size == (1200, 420)
        # the XOR panel's colours are the MLP's regions: both classes' colours appear in it
        pixels = np.asarray(image.convert("RGB"))[:, 800:]
    colours = {tuple(int(v) for v in c) for c in pixels.reshape(-1, 3)[::97]}
    assert any(c[2] > c[0] + 40 for c in colours) and any(c[0] > c[2] + 40 for c in colours)
    result = cli("parity", "--steps", "4", "--plot", "--out", tmp_path / "p.png")
    assert result.code == 0 and f"figure: {tmp_path / 'p.png'}" in result.out
    with Image.open(tmp_path / "p.png") as image:
        assert image.format == "PNG" and image.size == (1000, 450)


def test_compare_tables_runs_and_draws_their_curves(cli, tmp_path):
    for name, opt, epochs in (("adam-run", "adam", "2"), ("sgd-run", "sgd", "3")):
        assert cli("train", *SYNTH, "--epochs", epochs, "--opt", opt, "--out", tmp_path / name).code == 0
    out = tmp_path / "cmp"
    report = cli("compare", tmp_path / "adam-run", tmp_path / "sgd-run", "--out", out, "--json").json()
    rows = {r["run"]: r for r in report["runs"]}
    for name in ("adam-run", "sgd-run"):
        records = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        assert rows[name]["epochs"] == len(records)
        assert rows[name]["best_accuracy"] == max(r["test_accuracy"] for r in records)
        assert rows[name]["final_accuracy"] == records[-1]["test_accuracy"]
    assert rows["sgd-run"]["optimizer"] == "sgd" and rows["adam-run"]["lr"] == 1e-3
    with Image.open(out / "compare.png") as image:
        assert image.size == (1000, 400)
    page = (out / "compare.html").read_text()
    assert page.count('src="data:image/png;base64,') == 1 and "sgd-run" in page
    text = cli("compare", tmp_path / "adam-run", tmp_path / "sgd-run", "--out", out).out
    assert text.splitlines()[0].split() == ["run", "dataset", "model", "optimizer", "lr", "batch", "epochs", "best",
                                             "accuracy", "final", "accuracy", "train", "time", "status"]
    assert text.splitlines()[2].split()[:3] == ["sgd-run", "synthetic", "simplenet"]
    assert_one_line_error(cli("compare", tmp_path / "sgd-run", f"{tmp_path}/./sgd-run"), "given more than once")
    assert_one_line_error(cli("compare", tmp_path / "nope"), "does not exist")


def test_the_article_recipe_report_sets_the_published_numbers_beside_the_runs():
    from deepdive.config.recipes import ARTICLE
    from deepdive.viz.report import _article_section
    metrics = [{"epoch": 1, "train_loss": 1.9}, {"epoch": 2, "train_loss": 1.6}]
    section = _article_section({"recipe": "article"}, metrics, {"test_accuracy": 0.585,
                                                                 "test_accuracy_train_mode": 0.537})
    published = ARTICLE["published"]
    assert f"<td>{published['train_losses'][1]:.3f}</td><td>1.600</td>" in section
    assert f"article {100 * published['test_accuracy']:.2f}%" in section and "58.50%" in section and "53.70%" in section
    assert _article_section({"recipe": "fast"}, metrics, {}) == ""


def test_per_class_figure_marks_a_class_without_test_images(tmp_path):
    from deepdive.viz.run_figures import per_class
    rows = [{"class": "a", "images": 4, "correct": 3, "accuracy": 0.75},
            {"class": "b", "images": 0, "correct": 0, "accuracy": None}]
    with Image.open(per_class(rows, tmp_path)) as image:
        assert image.size == (1000, 400)


def test_no_figures_skips_them_and_report_draws_them_later(cli, tmp_path, figures_on):
    run = tmp_path / "run"
    assert cli("train", *SYNTH, "--epochs", "1", "--no-figures", "--out", run).code == 0
    assert not (run / "figures").exists()
    assert cli("report", run).code == 0
    assert sorted(p.name for p in (run / "figures").iterdir()) == ["confusion.png", "curves.png", "mistakes.png",
                                                                    "per_class.png"]
