"""Fast training: batched augmentation, the cache, streaming, fastnet, recipes, targets and budgets, TTA."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import SYNTH, assert_one_line_error
from deepdive.data.augment import BatchAugmenter, translate
from deepdive.training.schedule import lr_factor

CIFAR_LIKE = ["--dataset", "synthetic", "--synthetic-shape", "3,16,16", "--synthetic-classes", "4"]


def test_translate_moves_pixels_and_reflects_borders():
    x = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).reshape(2, 1, 5, 5)
    out = translate(x, torch.tensor([1, 0]), torch.tensor([0, -2]), 2)
    assert torch.equal(out[0, 0, :, :4], x[0, 0, :, 1:])  # shifted left by one: column j shows j+1
    assert torch.equal(out[0, 0, :, 4], x[0, 0, :, 3])  # reflected border
    assert torch.equal(out[1, 0, 2:], x[1, 0, :3])  # shifted down by two
    assert torch.equal(translate(x, torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long), 2), x)


def test_crops_stay_within_the_pad_and_keep_pixel_values():
    x = torch.randn(64, 3, 8, 8)
    aug = BatchAugmenter("crop-flip", 2, 64, seed=0)
    out = aug(x, torch.arange(64), 0)
    assert out.shape == x.shape
    for i in range(64):  # each output is some reflect-padded window of its input (or its mirror)
        padded = F.pad(torch.stack([x[i], x[i].flip(2)]), (2, 2, 2, 2), mode="reflect")
        windows = padded.unfold(2, 8, 1).unfold(3, 8, 1)  # 2, C, 5, 5, 8, 8
        match = (windows == out[i][None, :, None, None]).all(dim=(1, 4, 5))
        assert match.any(), i


def test_flips_are_exact_mirrors():
    x = torch.randn(200, 3, 4, 4)
    out = BatchAugmenter("flip", 0, 200, seed=1)(x, torch.arange(200), 0)
    flipped = (out == x.flip(3)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert torch.all(flipped | kept) and 60 < flipped.sum() < 140


def test_alternating_flip_complements_every_other_epoch():
    aug = BatchAugmenter("altflip", 0, 100, seed=3)
    idx = torch.arange(100)
    e0, e1, e2 = (aug.flips_for(idx, e) for e in (0, 1, 2))
    assert torch.equal(e1, ~e0) and torch.equal(e2, e0)
    x = torch.randn(100, 1, 3, 3)
    out0, out1 = aug(x, idx, 0), aug(x, idx, 1)
    assert torch.equal(torch.where(e0[:, None, None, None], x.flip(3), x), out0)
    assert torch.equal(torch.where(e1[:, None, None, None], x.flip(3), x), out1)


def test_augmentation_is_seeded_and_resumable():
    x = torch.randn(32, 3, 8, 8)
    a, b = BatchAugmenter("crop-altflip", 2, 32, seed=5), BatchAugmenter("crop-altflip", 2, 32, seed=5)
    assert torch.equal(a(x, torch.arange(32), 0), b(x, torch.arange(32), 0))
    state = a.state()
    first = a(x, torch.arange(32), 1)
    c = BatchAugmenter("crop-altflip", 2, 32, seed=5)
    c.load_state(state)
    assert torch.equal(c(x, torch.arange(32), 1), first)
    assert not torch.equal(BatchAugmenter("crop-altflip", 2, 32, seed=6)(x, torch.arange(32), 0),
                           b(x, torch.arange(32), 1))


def test_schedules():
    assert lr_factor("cosine", 0.5, 0.0) == pytest.approx(0.5)
    assert lr_factor("cosine", 0.1, 0.2) == pytest.approx(0.5)  # warm-up first
    assert lr_factor("step", 0.5, 0.0, epochs=10, decay_epochs=2, decay_rate=0.5) == pytest.approx(0.5 ** 2)
    assert lr_factor("constant", 0.05, 0.1) == pytest.approx(0.5)
    assert lr_factor("warmup-linear", 0.05, 0.1) == pytest.approx(0.5)
    assert lr_factor("warmup-linear", 0.1, 0.1) == pytest.approx(1.0)
    assert lr_factor("warmup-linear", 0.55, 0.1) == pytest.approx(0.5)
    assert lr_factor("warmup-linear", 1.0, 0.1) == 0.0
    assert lr_factor("onecycle", 0.0, 0.3) == pytest.approx(1 / 25)
    assert lr_factor("onecycle", 0.3, 0.3) == pytest.approx(1.0)
    assert lr_factor("onecycle", 1.0, 0.3) < 1e-3
    assert lr_factor("constant", 0.7, 0.0) == 1.0


def test_fastnet_shapes_init_and_whitening():
    from deepdive.models.registry import build_model
    from deepdive.models.fastnet import init_whitening
    model = build_model("fastnet", nn, F, (3, 32, 32), 10, widths=(16, 32, 64))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert not model.whiten.weight.requires_grad
    conv = model.blocks[1].conv1.weight  # 16 -> 32: the first 16 output channels pass their input through
    centre = conv[:16, :, 1, 1]
    assert torch.equal(centre, torch.eye(16)) and conv[:16, :, 0, 0].abs().sum() == 0
    images = torch.randn(500, 3, 16, 16) * torch.tensor([1.0, 3.0, 0.5]).view(1, 3, 1, 1)
    images[:, 1] += images[:, 0]  # correlated channels
    init_whitening(model, images)
    patches = images.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 12)
    out = (patches - patches.mean(0)) @ model.whiten.weight[:12].reshape(12, 12).T
    cov = out.T @ out / len(out)
    assert torch.allclose(cov, torch.eye(12), atol=0.02)  # whitened: identity covariance
    assert torch.equal(model.whiten.weight[12:], -model.whiten.weight[:12])
    assert build_model("fastnet", nn, F, (1, 12, 12), 3, widths=(8,))(torch.randn(1, 1, 12, 12)).shape == (1, 3)


def test_tta_flip_equals_mean_of_flipped_logits():
    from deepdive.training.evaluation import tta_logits
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    x = torch.randn(7, 3, 8, 8)
    expected = (model(x) + model(x.flip(3))) / 2
    assert torch.allclose(tta_logits(model, x, "flip"), expected)
    assert tta_logits(model, x, "flip-shift").shape == (7, 5)
    assert torch.equal(tta_logits(model, x, "none"), model(x))


def test_fast_recipe_trains_and_evaluate_reproduces(cli, tmp_path):
    run = tmp_path / "run"
    result = cli("train", "--recipe", "fast", *CIFAR_LIKE, "--widths", "8,16,16", "--epochs", "2",
                 "--batch-size", "128", "--out", run, "--json")
    assert result.code == 0, result.err
    summary = result.json()
    assert summary["weights"] == "ema" and summary["tta"] == "flip-shift" and summary["test_accuracy"] > 0.6
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["recipe"] == "fast" and cfg["model"] == "fastnet" and cfg["tta"] == "flip-shift" and cfg["ema"]
    assert cfg["widths"] == [8, 16, 16] and cfg["batch_size"] == 128  # flags override the recipe
    again = cli("evaluate", run, "--json").json()
    assert again["test_accuracy"] == summary["test_accuracy"] and again["weights"] == "ema"


def test_fast_recipe_resumes_exactly_after_an_interrupt(tmp_path):
    """EMA weights, schedule position and the augmentation RNG all survive a mid-run stop."""
    import signal

    from test_resume import finish, stop_at, weights
    # one thread, fixed: a thread count chosen per process from the machine's load could differ between the
    # reference and the resumed run, and with it the order of float reductions
    args = ["train", "--recipe", "fast", *CIFAR_LIKE, "--widths", "8,8,8", "--epochs", "4", "-b", "128",
            "--threads", "1"]
    finish(*args, "--out", tmp_path / "reference")
    run = tmp_path / "stopped"
    proc, err = stop_at([*args, "--out", run], "step:24", tmp_path, signal.SIGINT)  # 16 steps an epoch: epoch 2
    assert proc.returncode == 130, err
    state = torch.load(run / "state.pt", weights_only=True)
    assert state["ema"] is not None and state["augment"] is not None and state["loop"]["epoch"] == 1
    finish("train", "--resume", run)
    assert weights(run) == weights(tmp_path / "reference")


def test_target_accuracy_stops_early_and_records(cli, tmp_path, caplog):
    with caplog.at_level("INFO", logger="deepdive"):
        result = cli("train", "--recipe", "fast", *CIFAR_LIKE, "--widths", "8,16,16", "--epochs", "20", "-b", "64",
                     "--target-accuracy", "0.6", "--out", tmp_path / "t", "--json")
    assert result.code == 0, result.err
    s = result.json()
    assert s["target_reached"] and s["target_accuracy"] == 0.6 and s["epochs"] < 20
    assert 0 < s["seconds_to_target"] <= s["train_seconds"] + 1e-6 and s["eval_seconds"] > 0
    assert s["test_accuracy"] >= 0.6 and s["accuracy_at_target"] == s["test_accuracy"]
    steps_per_epoch = 2000 // 64 + 1
    records = [json.loads(line) for line in (tmp_path / "t" / "metrics.jsonl").read_text().splitlines()]
    last = records[-1].get("steps", steps_per_epoch)
    assert s["steps_to_target"] == (len(records) - 1) * steps_per_epoch + last
    assert last % (steps_per_epoch // 4) == 0 or last == steps_per_epoch  # checked 4 times an epoch
    step = s["steps_to_target"]  # the check that reached it, as the log says it
    shown = f"step {step} (epoch {step / steps_per_epoch:.2f}): test acc {100 * s['test_accuracy']:.2f}% (target 60.00%)"
    assert shown in caplog.text


class StepClock:
    """A fake clock that moves only when a step ends: each step takes exactly ``per_step`` seconds."""

    def __init__(self, per_step):
        self.now, self.per_step = 0.0, per_step

    def __call__(self):
        return self.now

    def hook(self, point, n):
        if point == "step":
            self.now += self.per_step


def test_time_budget_follows_an_injected_clock(tmp_path, monkeypatch):
    """A 1.5 s budget at 0.25 s a step is exactly 6 steps; the schedule follows the clock."""
    import deepdive.training.loop as loop
    from deepdive.config.resolve import resolve_config
    from deepdive.training.setup import run_training
    from test_wiring import flags_of
    clock, lrs = StepClock(0.25), []
    set_lr = loop.Trainer.set_lr
    monkeypatch.setattr(loop.Trainer, "set_lr", lambda self: lrs.append(set_lr(self)) or lrs[-1])
    cfg = resolve_config({**flags_of(*SYNTH, "--sched", "warmup-linear", "--warmup", "0.5", "--lr", "0.1",
                                     "--time-budget", "1.5", "--opt", "sgd"), "out": str(tmp_path / "b")})
    s = run_training(cfg, clock=clock, hooks=clock.hook)
    steps_per_epoch = 2000 // 64 + 1
    assert s["train_seconds"] == 1.5 and s["time_budget_seconds"] == 1.5 and not s["deterministic"]
    assert s["epochs_done"] == pytest.approx(6 / steps_per_epoch) and s["epochs"] == 1
    assert s["images_per_second"] == pytest.approx(6 * 64 / 1.5)  # the partial epoch's images, not the whole set's
    # warm-up over the first 0.75 s (lr 0, 1/3, 2/3 of 0.1), then linear decay to 0 at 1.5 s
    assert lrs == pytest.approx([0.0, 0.1 / 3, 0.2 / 3, 0.1, 0.1 * 2 / 3, 0.1 / 3])
    record = json.loads((tmp_path / "b" / "metrics.jsonl").read_text())
    assert record["steps"] == 6 and record["images_per_second"] == pytest.approx(256.0)


def test_time_budget_on_the_real_clock(cli, tmp_path):
    result = cli("train", *SYNTH, "--sched", "cosine", "--time-budget", "0.3", "--out", tmp_path / "b", "--json")
    assert result.code == 0, result.err
    s = result.json()
    assert s["status"] == "completed" and s["train_seconds"] >= 0.3 and s["epochs_done"] > 0


def test_scratch_engine_refuses_the_fast_recipe(cli, tmp_path):
    assert_one_line_error(cli("train", "--recipe", "fast", "--engine", "scratch", *CIFAR_LIKE), "torch engine",
                          "--recipe fast")
    for option in (["--augment", "flip"], ["--ema", "0.9"], ["--tta", "flip"], ["--amp"], ["--compile"],
                   ["--channels-last"]):
        assert_one_line_error(cli("train", *SYNTH, "--engine", "scratch", *option), "torch-engine only", option[0])
    assert_one_line_error(cli("train", *SYNTH, "--target-accuracy", "61.2"), "not a fraction")


def test_list_shows_recipes(cli):
    recipes = cli("list", "--json").json()["recipes"]
    assert set(recipes) == {"article", "fast", "sprint"} | {f"ladder-{i}" for i in range(11)}
    assert recipes["ladder-3"]["values"]["batch_size"] == 128 and "warm-up" in recipes["ladder-3"]["reasons"]["lr"]
    assert recipes["fast"]["values"]["lr"] == 0.2 and "batch" in recipes["fast"]["reasons"]["lr"]


def test_dataset_cache_is_used_and_rebuilt_when_the_source_changes(tmp_path, monkeypatch):
    from PIL import Image

    from deepdive.data import imagefolder
    from test_data_imagefolder import make_tree
    monkeypatch.setenv("DEEPDIVE_CACHE", str(tmp_path / "cache"))
    root = make_tree(tmp_path / "tree")
    calls = {"n": 0}
    real = imagefolder._decode

    def counting(*a, **k):
        calls["n"] += 1
        return real(*a, **k)

    monkeypatch.setattr(imagefolder, "_decode", counting)
    first = imagefolder.load_imagefolder(root, 8)
    assert calls["n"] == 2 and len(list((tmp_path / "cache").iterdir())) == 1
    second = imagefolder.load_imagefolder(root, 8)
    assert calls["n"] == 2 and torch.equal(first[0].images, second[0].images)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "train" / "cat" / "new.png")
    third = imagefolder.load_imagefolder(root, 8)
    assert calls["n"] == 4 and len(third[0]) == len(first[0]) + 1
    assert not any((root / "train").rglob("*.pt"))  # never beside the data


def test_streaming_fallback_matches_in_memory(cli, tmp_path, monkeypatch, caplog):
    from test_data_imagefolder import make_tree
    monkeypatch.setenv("DEEPDIVE_CACHE", str(tmp_path / "cache"))
    root = make_tree(tmp_path / "tree", per_class=6)
    args = ["train", "--dataset", "imagefolder", "--data-dir", root, "--image-size", "8", "--model", "perceptron",
            "--epochs", "2", "-j", "0", "--json"]
    memory = cli(*args, "--out", tmp_path / "mem").json()
    monkeypatch.setattr("deepdive.data.imagefolder.memory_limit", lambda: 1000)  # decoded data may take 1,000 bytes
    with caplog.at_level("INFO", logger="deepdive"):
        streamed = cli(*args, "--out", tmp_path / "stream").json()
    assert "streaming it from disk" in caplog.text
    assert streamed["test_accuracy"] == memory["test_accuracy"]
    assert streamed["train_loss"] == pytest.approx(memory["train_loss"], rel=1e-5)


def test_predict_uses_the_recipes_tta_and_agrees_with_evaluate(cli, tmp_path):
    from test_data_imagefolder import make_tree
    root = make_tree(tmp_path / "tree", per_class=10, size=(20, 20))
    run = tmp_path / "run"
    result = cli("train", "--recipe", "fast", "--dataset", "imagefolder", "--data-dir", root, "--image-size", "16",
                 "--widths", "8,8,8", "--epochs", "2", "-b", "16", "--out", run, "--json")
    assert result.code == 0, result.err
    evaluated = cli("evaluate", run, "--dataset", "imagefolder", "--data-dir", root, "--json").json()
    predicted = cli("predict", run, root / "test", "--json").json()
    correct = sum(p["predictions"][0]["class"] == p["file"].split("/")[-2] for p in predicted)
    assert correct / len(predicted) == evaluated["test_accuracy"]


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path):
    from deepdive.config.machine import cpu_has_native_bf16

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n")
    assert cpu_has_native_bf16(str(info))
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f amx_tile amx_bf16\n")
    assert cpu_has_native_bf16(str(info))
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n")  # bf16 only emulated
    assert not cpu_has_native_bf16(str(info))
    assert not cpu_has_native_bf16(str(tmp_path / "missing"))


@pytest.mark.parametrize("native", [True, False])
def test_cpu_recipes_use_bf16_only_where_the_cpu_has_it(monkeypatch, native):
    import deepdive.config.machine
    from deepdive.config.recipes import recipe_values

    monkeypatch.setattr(deepdive.config.machine, "cpu_has_native_bf16", lambda: native)
    assert recipe_values("fast", "cpu")["amp"] is native
    assert recipe_values("sprint", "cpu")["amp"] is native
    assert recipe_values("fast", "cuda")["amp"] is True


def test_amp_on_cpu_computes_in_bf16_and_evaluate_reproduces(cli, tmp_path):
    from deepdive.training.engines import TorchEngine

    engine = TorchEngine("cpu", amp=True)
    layer = nn.Linear(4, 3)
    with engine.autocast():
        assert layer(torch.randn(2, 4)).dtype == torch.bfloat16
    assert engine.cross_entropy(layer(torch.randn(2, 4)).bfloat16(), torch.tensor([0, 1])).dtype == torch.float32
    run = tmp_path / "amp"
    result = cli("train", "--recipe", "fast", *CIFAR_LIKE, "--widths", "8,16,16", "--epochs", "2", "--amp",
                 "--out", run, "--json")
    assert result.code == 0, result.err
    summary = result.json()
    assert summary["test_accuracy"] > 0.6
    assert json.loads((run / "config.json").read_text())["amp"] is True
    assert cli("evaluate", run, "--json").json()["test_accuracy"] == summary["test_accuracy"]
    off = cli("train", "--recipe", "fast", *CIFAR_LIKE, "--widths", "8,8,8", "--epochs", "1", "--no-amp",
              "--out", tmp_path / "fp32", "--json")
    assert off.code == 0, off.err
    assert json.loads((tmp_path / "fp32" / "config.json").read_text())["amp"] is False
