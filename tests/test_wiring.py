"""Every switch that changes training, pinned against an independent computation.

Each run here trains on one full batch per epoch (32 images, batch 32), so a run
of K epochs is K optimizer steps on the same batch, whatever the shuffle. The
reference repeats those K steps by hand with torch.optim, torch.nn.functional and
the formulas written out below - no deepdive code on the update path - starting
from the run's own initial weights. If an option stops reaching the computation
(clipping made a no-op, an optimizer name mapped to another, decay dropped, label
smoothing forced to 0 ...), the run's weights leave the reference's.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.numpy import load_file

from conftest import SYNTH
from deepdive.config.resolve import resolve_config
from deepdive.training.run_data import prepare_data
from deepdive.models.registry import build_model
from deepdive.training.setup import build_components

BATCH = ["--limit-train", "32", "-b", "32", "--limit-test", "8", "--model", "simplenet"]
STEPS = 4


def flags_of(*argv):
    from deepdive.commands.train_flags import parse_train_flags
    return parse_train_flags([str(a) for a in argv])


def start(tmp_path, *argv):
    """The run's config, data (normalized full batch) and initial weights, built as the run builds them."""
    cfg = resolve_config({**flags_of(*SYNTH, *BATCH, "--epochs", STEPS, *argv), "out": str(tmp_path / "run")})
    bundle = prepare_data(cfg)
    parts = build_components(cfg, bundle)
    init = {k: np.array(v, copy=True) for k, v in parts.engine.weights(parts.model).items()}
    from deepdive.data.pipeline import Normalizer
    x = Normalizer(bundle.mean, bundle.std, bundle.input_shape[0])(bundle.train.images).float()
    return cfg, bundle, init, x, bundle.train.labels


def torch_model(cfg, bundle, init):
    model = build_model(cfg.model, torch.nn, F, bundle.input_shape, bundle.num_classes,
                        article_exact=cfg.article_exact)
    model.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in init.items()})
    return model


def by_hand_groups(model, wd, all_params=False):
    """Decay on the linear layers' weights only (biases excluded), named by hand."""
    weights = [p for n, p in model.named_parameters() if n.endswith(".weight")]
    biases = [p for n, p in model.named_parameters() if n.endswith(".bias")]
    if all_params:
        return [{"params": weights + biases, "weight_decay": wd}]
    return [{"params": weights, "weight_decay": wd}, {"params": biases, "weight_decay": 0.0}]


def torch_optimizer(name, groups, lr, momentum):
    o = torch.optim
    return {
        "sgd": lambda: o.SGD(groups, lr=lr, momentum=momentum or 0.0),
        "momentum": lambda: o.SGD(groups, lr=lr, momentum=0.9 if momentum is None else momentum),
        "nesterov": lambda: o.SGD(groups, lr=lr, momentum=0.9 if momentum is None else momentum, nesterov=True),
        "adagrad": lambda: o.Adagrad(groups, lr=lr),
        "adadelta": lambda: o.Adadelta(groups, lr=lr),
        "rmsprop": lambda: o.RMSprop(groups, lr=lr, momentum=momentum or 0.0),
        "adam": lambda: o.Adam(groups, lr=lr),
        "adamw": lambda: o.AdamW(groups, lr=lr),
    }[name]()


def schedule_by_hand(cfg, k):
    """The learning-rate multiplier of step k (0-based) of STEPS, written out for each schedule."""
    p = k / STEPS
    w = cfg.warmup_epochs / cfg.epochs if cfg.warmup_epochs is not None else cfg.warmup
    if cfg.schedule == "onecycle":
        if p < w:
            return 1 / 25 + (1 - 1 / 25) * p / w
        return 1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * (p - w) / (1 - w)))
    if p < w:
        return p / w
    return {"constant": 1.0, "warmup-linear": (1 - p) / (1 - w),
            "cosine": 0.5 * (1 + math.cos(math.pi * (p - w) / (1 - w))),
            "step": (cfg.decay_rate ** math.floor(k / cfg.decay_epochs)) if cfg.decay_epochs else None}[cfg.schedule]


def reference(cfg, bundle, init, x, y):
    """STEPS steps by hand: returns (final weights, EMA weights or None)."""
    model = torch_model(cfg, bundle, init)
    wd = cfg.weight_decay if cfg.weight_decay is not None else (0.01 if cfg.optimizer == "adamw" else 0.0)
    groups = by_hand_groups(model, 0.0 if cfg.decoupled_wd else wd, cfg.decay_norm_and_bias)
    opt = torch_optimizer(cfg.optimizer, groups, cfg.lr, cfg.momentum)
    decayed = [p for g in by_hand_groups(model, wd, cfg.decay_norm_and_bias) if g["weight_decay"] for p in g["params"]]
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for k in range(STEPS):
        lr = cfg.lr * schedule_by_hand(cfg, k)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad()
        F.cross_entropy(model(x), y, label_smoothing=cfg.label_smoothing).backward()
        if cfg.grad_clip:
            norm = math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in model.parameters()))
            for p in model.parameters():
                p.grad.mul_(min(1.0, cfg.grad_clip / (norm + 1e-6)))
        if cfg.decoupled_wd:
            with torch.no_grad():
                for p in decayed:
                    p.mul_(1 - lr * wd)
        opt.step()
        if cfg.ema:
            d = min(cfg.ema, (2 + k) / (11 + k))  # (1 + t)/(10 + t) at update t = k + 1
            for name, v in model.state_dict().items():
                ema[name] = d * ema[name] + (1 - d) * v.detach()
    final = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    return final, ({k: v.numpy() for k, v in ema.items()} if cfg.ema else None)


def train(cli, tmp_path, *argv):
    result = cli("train", *SYNTH, *BATCH, "--epochs", STEPS, "--out", tmp_path / "run", "--json", *argv)
    assert result.code == 0, result.err
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=True)
    raw = {k: np.asarray(v.numpy() if hasattr(v, "numpy") else v) for k, v in state["model"].items()}
    return raw, load_file(str(tmp_path / "run" / "model.safetensors"))


def assert_close(ours, theirs, engine):
    """Equal within float32 noise. The run sums the batch in its shuffled order (and the scratch engine in
    NumPy's), so a few elements whose gradient is nearly 0 - where Adagrad/RMSprop/Adam divide noise by
    noise - may differ: at most 0.5% of them, while any broken option moves nearly all of them."""
    assert ours.keys() == theirs.keys()
    rtol, atol = (2e-4, 2e-6) if engine == "torch" else (2e-3, 2e-5)
    off = sum(int((~np.isclose(ours[k], theirs[k], rtol=rtol, atol=atol)).sum()) for k in ours)
    assert off <= 0.005 * sum(v.size for v in ours.values()), f"{off} elements differ"


def assert_far(ours, theirs):
    assert max(float(np.abs(ours[k] - theirs[k]).max()) for k in ours) > 1e-3


OPTIMIZER_CASES = [
    ["--opt", "sgd", "--lr", "0.3"],
    ["--opt", "sgd", "--lr", "0.3", "--momentum", "0.5"],
    ["--opt", "momentum", "--lr", "0.1"],
    ["--opt", "nesterov", "--lr", "0.1", "--momentum", "0.7"],
    ["--opt", "adagrad", "--lr", "0.05"],
    ["--opt", "adadelta", "--lr", "1.0"],
    ["--opt", "rmsprop", "--lr", "0.01"],
    ["--opt", "rmsprop", "--lr", "0.01", "--momentum", "0.3"],
    ["--opt", "adam", "--lr", "0.01"],
    ["--opt", "adamw", "--lr", "0.01"],
]
OPTION_CASES = [
    ["--opt", "momentum", "--lr", "0.2", "--weight-decay", "0.3"],
    ["--opt", "adam", "--lr", "0.01", "--weight-decay", "0.5", "--decay-norm-and-bias"],
    ["--opt", "adamw", "--lr", "0.01", "--weight-decay", "2.0"],
    ["--opt", "nesterov", "--lr", "0.5", "--weight-decay", "0.3", "--decoupled-wd"],
    ["--opt", "sgd", "--lr", "0.5", "--clip-grad", "0.05"],
    ["--opt", "adam", "--lr", "0.01", "--clip-grad", "0.05"],
    ["--opt", "sgd", "--lr", "0.5", "--smoothing", "0.4"],
    ["--opt", "sgd", "--lr", "0.5", "--sched", "warmup-linear", "--warmup", "0.5"],
    ["--opt", "sgd", "--lr", "0.5", "--sched", "cosine"],
    ["--opt", "sgd", "--lr", "0.5", "--sched", "cosine", "--warmup-epochs", "1"],
    ["--opt", "sgd", "--lr", "0.5", "--sched", "step", "--decay-epochs", "2", "--decay-rate", "0.3"],
    ["--opt", "sgd", "--lr", "0.5", "--sched", "onecycle", "--warmup", "0.25"],
    ["--opt", "sgd", "--lr", "0.5", "--warmup-epochs", "2"],
]


@pytest.mark.parametrize("engine", ["torch", "scratch"])
@pytest.mark.parametrize("argv", OPTIMIZER_CASES + OPTION_CASES, ids=lambda a: " ".join(a))
def test_training_equals_steps_by_hand(cli, tmp_path, engine, argv):
    argv = [*argv, "--engine", engine]
    cfg, bundle, init, x, y = start(tmp_path, *argv)
    raw, _ = train(cli, tmp_path, *argv)
    final, _ = reference(cfg, bundle, init, x, y)
    assert_close(raw, final, engine)
    assert_far(raw, init)  # it trained


@pytest.mark.parametrize("argv, breakage", [
    (["--opt", "sgd", "--lr", "0.5", "--clip-grad", "0.05"], {"grad_clip": None}),
    (["--opt", "sgd", "--lr", "0.5", "--smoothing", "0.4"], {"label_smoothing": 0.0}),
    (["--opt", "nesterov", "--lr", "0.5", "--weight-decay", "0.3", "--decoupled-wd"], {"weight_decay": 0.0}),
    (["--opt", "momentum", "--lr", "0.2", "--weight-decay", "0.3"], {"decay_norm_and_bias": True}),
    (["--opt", "sgd", "--lr", "0.5", "--sched", "cosine"], {"schedule": "constant"}),
    (["--opt", "adagrad", "--lr", "0.05"], {"optimizer": "adam"}),
    (["--opt", "nesterov", "--lr", "0.1", "--momentum", "0.7"], {"momentum": 0.9}),
    (["--opt", "sgd", "--lr", "0.3"], {"lr": 0.2}),
])
def test_each_option_changes_the_reference(cli, tmp_path, argv, breakage):
    """The cases above can fail: without the option, the reference lands elsewhere."""
    import dataclasses
    cfg, bundle, init, x, y = start(tmp_path, *argv)
    raw, _ = train(cli, tmp_path, *argv)
    broken, _ = reference(dataclasses.replace(cfg, **breakage), bundle, init, x, y)
    assert_far(raw, broken)


def test_ema_weights_are_the_average_by_hand(cli, tmp_path):
    argv = ["--opt", "sgd", "--lr", "0.5", "--ema", "0.6"]
    cfg, bundle, init, x, y = start(tmp_path, *argv)
    raw, reported = train(cli, tmp_path, *argv)
    final, ema = reference(cfg, bundle, init, x, y)
    assert_close(raw, final, "torch")
    assert_close(reported, ema, "torch")  # model.safetensors holds the average: what the recipe reports
    assert_far(reported, final)


def test_amp_runs_the_forward_pass_in_bf16(cli, tmp_path):
    argv = ["--opt", "sgd", "--lr", "0.5", "--amp", "--epochs", "1"]
    cfg, bundle, init, x, y = start(tmp_path, *argv)
    raw, _ = train(cli, tmp_path, *argv)
    for autocast in (True, False):
        model = torch_model(cfg, bundle, init)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logits = model(x)
        F.cross_entropy(logits.float(), y).backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.5 * p.grad
        by_hand = {k: v.detach().numpy() for k, v in model.state_dict().items()}
        if autocast:
            assert_close(raw, by_hand, "torch")
        else:  # bf16 and fp32 forward passes land measurably apart
            assert max(float(np.abs(raw[k] - by_hand[k]).max()) for k in raw) > 1e-5, "--amp computed in fp32"


def candidate_views(image, kind, pad=2):
    """Every view augmentation ``kind`` may produce from one normalized image, made by hand:
    the image or its mirror, shifted by up to ``pad`` pixels from a reflect-padded border."""
    flips = [image, image.flip(-1)] if kind != "none" else [image]
    if not kind.startswith("crop"):
        return flips
    views = []
    for v in flips:
        padded = F.pad(v[None], (pad, pad, pad, pad), mode="reflect")[0]
        h, w = v.shape[-2:]
        views += [padded[..., dy:dy + h, dx:dx + w] for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)]
    return views


def inputs_seen(tmp_path, *argv):
    """Train through the real loop with a spy on the model's input: every batch it was fed, per epoch."""
    from deepdive.storage.runs import RunDir
    from deepdive.training.signals import StopFlag
    from deepdive.training.loop import Trainer

    cfg = resolve_config({**flags_of(*SYNTH, *argv), "out": str(tmp_path / "spy")})
    bundle = prepare_data(cfg)
    parts = build_components(cfg, bundle)
    seen = []
    parts.model.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone())
                                          if module.training else None)
    trainer = Trainer(cfg, RunDir.create(cfg.out), bundle, parts.engine, parts.model, parts.optimizer, StopFlag())
    trainer.fit({})
    from deepdive.data.pipeline import Normalizer
    x = Normalizer(bundle.mean, bundle.std, bundle.input_shape[0])(bundle.train.images).float()
    return cfg, x, seen


def which_view(row, x, kind):
    """(image index, view index) of the one candidate ``row`` equals; fails if none does."""
    for i in range(len(x)):
        for j, view in enumerate(candidate_views(x[i], kind)):
            if torch.allclose(row, view, atol=1e-6):
                return i, j
    raise AssertionError("the model was fed an image that is no view of any training image")


@pytest.mark.parametrize("kind", ["none", "flip", "altflip", "crop-flip", "crop-altflip"])
def test_augmentation_feeds_the_model_views_made_by_hand(tmp_path, kind):
    cfg, x, seen = inputs_seen(tmp_path, "--limit-train", "16", "-b", "8", "--epochs", "2", "--model", "simplenet",
                               "--opt", "sgd", "--lr", "0.1", "--augment", kind, "--crop-pad", "2")
    assert len(seen) == 4  # 2 epochs of 2 batches
    epochs = [[which_view(row, x, kind) for batch in seen[e * 2:(e + 1) * 2] for row in batch] for e in (0, 1)]
    for matched in epochs:
        assert sorted(i for i, _ in matched) == list(range(16))  # each image once per epoch
    views = [j for matched in epochs for _, j in matched]
    per_flip = 25 if kind.startswith("crop") else 1
    flipped = {e: {i: j >= per_flip for i, j in epochs[e]} for e in (0, 1)}
    if kind == "none":
        assert set(views) == {0}
        return
    assert 0 < sum(flipped[0].values()) < 16  # some mirrored, some not
    if kind.endswith("altflip"):  # every image the other way round in the next epoch
        assert all(flipped[1][i] != flipped[0][i] for i in range(16))
    if kind.startswith("crop"):
        assert len({j % per_flip for j in views}) > 3  # several shifts used


def test_channels_last_reaches_the_tensors(tmp_path):
    shape = ["--synthetic-shape", "3,12,12", "--model", "article-cnn", "--limit-train", "8", "-b", "8"]
    for flag, expected in (("--channels-last", True), ("--no-channels-last", False)):
        cfg, x, seen = inputs_seen(tmp_path / flag, *shape, "--epochs", "1", flag)
        assert cfg.channels_last is expected
        assert seen[0].is_contiguous(memory_format=torch.channels_last) is expected
    cfg = resolve_config({**flags_of(*SYNTH, "--model", "fastnet", "--synthetic-shape", "3,12,12", "--widths", "8"),
                          "out": str(tmp_path / "f")})
    assert cfg.channels_last is None
    parts = build_components(cfg, prepare_data(cfg))
    assert parts.channels_last is True  # fastnet declares channels-last; simplenet does not
    assert parts.model.blocks[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("engine", ["torch", "scratch"])
@pytest.mark.parametrize("exact", [True, False])
def test_article_exact_keeps_relu_on_the_logits(cli, tmp_path, engine, exact):
    from deepdive.inference.evaluate import evaluate_run
    argv = ["--opt", "sgd", "--lr", "0.5", "--epochs", "1", "--engine", engine] + (["--article-exact"] if exact else [])
    cfg, bundle, init, x, y = start(tmp_path, *argv)
    raw, _ = train(cli, tmp_path, *argv)
    w = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in raw.items()}
    from deepdive.data.pipeline import Normalizer
    tx = Normalizer(bundle.mean, bundle.std, 1)(bundle.test.images).float().flatten(1)
    h = torch.relu(tx @ w["fc1.weight"].T + w["fc1.bias"])
    h = torch.relu(h @ w["fc2.weight"].T + w["fc2.bias"])
    logits = h @ w["fc3.weight"].T + w["fc3.bias"]
    if exact:
        logits = torch.relu(logits)
    loss = float(F.cross_entropy(logits, bundle.test.labels))
    assert evaluate_run(tmp_path / "run")["test_loss"] == pytest.approx(loss, rel=1e-4)


def test_ema_copies_batchnorm_statistics_and_round_trips():
    """Running statistics are copied, not averaged; the state holds updates and weights."""
    from deepdive.training.ema import EMA
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    ema = EMA(model, 0.5)
    for _ in range(3):
        model.train()(torch.randn(8, 3, 6, 6) * 3 + 1)
        with torch.no_grad():
            model[0].weight.add_(0.1)
        ema.update(model)
    bn, ema_bn = model[1], ema.model[1]
    assert torch.equal(ema_bn.running_mean, bn.running_mean) and torch.equal(ema_bn.running_var, bn.running_var)
    assert torch.equal(ema_bn.num_batches_tracked, bn.num_batches_tracked)
    assert not torch.equal(ema.model[0].weight, model[0].weight)  # parameters are averaged
    assert not any(p.requires_grad for p in ema.model.parameters())
    state = ema.state()
    assert set(state) == {"updates", "weights"} and state["updates"] == 3
    other = EMA(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)), 0.5)
    other.load_state(state)
    assert other.updates == 3 and all(torch.equal(a, b) for a, b in zip(other.model.state_dict().values(),
                                                                       ema.model.state_dict().values()))


def test_native_bf16_default_reads_this_machines_cpu_flags():
    from deepdive.config.machine import cpu_has_native_bf16
    flags = set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags = set(line.split(":")[1].split())
                break
    assert cpu_has_native_bf16() == bool(flags & {"avx512_bf16", "amx_bf16"})


@pytest.mark.parametrize("engine", ["torch", "scratch"])
def test_reported_accuracy_and_epoch_line_agree_with_a_hand_count(cli, tmp_path, engine, caplog):
    """The summary's accuracy is the share of test images whose largest logit is the label; the epoch's log
    line shows the figures metrics.jsonl records."""
    import json
    argv = ["--opt", "sgd", "--lr", "0.5", "--epochs", "2", "--engine", engine, "--val-split", "0.25"]
    cfg, bundle, init, x, y = start(tmp_path, *argv)
    with caplog.at_level("INFO", logger="deepdive"):
        result = cli("train", *SYNTH, *BATCH, *argv, "--out", tmp_path / "run", "--json")
    assert result.code == 0, result.err
    model = torch_model(cfg, bundle, {k: np.asarray(v) for k, v in load_file(str(tmp_path / "run" /
                                                                               "model.safetensors")).items()})
    from deepdive.data.pipeline import Normalizer
    tx = Normalizer(bundle.mean, bundle.std, 1)(bundle.test.images).float()
    with torch.no_grad():
        correct = int((model(tx).argmax(1) == bundle.test.labels).sum())
    assert result.json()["test_accuracy"] == correct / len(bundle.test)
    record = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch 2/2"))
    assert (f"train loss {record['train_loss']:.4f}  test loss {record['test_loss']:.4f}  "
            f"test acc {100 * record['test_accuracy']:.2f}%  val acc {100 * record['val_accuracy']:.2f}%") in line


def test_in_process_sigint_at_a_step_then_resume_ends_bit_identical(tmp_path, monkeypatch):
    """The hook points fire in order; SIGINT at step 10 checkpoints mid-epoch and resume ends bit-identical
    (in-process, so the checkpoint/restore code is what this very test imports; the name avoids the words of
    mutmut's -k filter, which leaves out the tests that stop child processes). The restore hands the group the
    checkpoint's RNG states and the stopwatch holding the checkpoint's clocks."""
    import json
    import os
    import signal

    from deepdive.errors import Interrupted
    from deepdive.training.ddp.group import OneProcess
    from deepdive.training.resume import open_resume, resume_run
    from deepdive.training.setup import run_training
    argv = [*SYNTH, "--limit-train", "96", "-b", "16", "--epochs", "3", "--opt", "momentum", "--lr", "0.05",
            "--save-every", "2", "--ema", "0.8", "--augment", "crop-flip"]
    reference = run_training(resolve_config({**flags_of(*argv), "out": str(tmp_path / "ref")}))
    points = []

    def hook(point, n):
        points.append((point, n))
        if (point, n) == ("step", 10):
            os.kill(os.getpid(), signal.SIGINT)  # the handler sets the stop flag; the loop checkpoints
    with pytest.raises(Interrupted):
        run_training(resolve_config({**flags_of(*argv), "out": str(tmp_path / "cut")}), hooks=hook)
    assert points == [("step", n) for n in range(1, 7)] + [("written", 1)] + [("step", n) for n in range(7, 11)]
    loop = torch.load(tmp_path / "cut" / "state.pt", weights_only=True)["loop"]
    assert (loop["epoch"], loop["step_in_epoch"], loop["global_step"], loop["seen"]) == (1, 4, 10, 64)
    assert loop["clocks"]["train"] > 0 and loop["order"] is not None
    saved_rng = torch.load(tmp_path / "cut" / "state.pt", weights_only=True)["rng"]
    handed = []
    monkeypatch.setattr(OneProcess, "restored", lambda self, rng, watch: handed.append((rng, watch.state())))
    run, cfg, differences = open_resume(str(tmp_path / "cut"), {})
    resumed = resume_run(run, cfg, differences)
    [(rng, clocks)] = handed
    assert rng.keys() == saved_rng.keys() and all(torch.equal(rng[k], saved_rng[k]) for k in ("torch", "data"))
    assert clocks == loop["clocks"]
    assert (tmp_path / "cut" / "model.safetensors").read_bytes() == (tmp_path / "ref" / "model.safetensors").read_bytes()
    assert resumed["test_loss"] == reference["test_loss"] and resumed["epochs"] == 3
    final = torch.load(tmp_path / "cut" / "state.pt", weights_only=True)["loop"]
    assert final["epoch"] == 3  # --save-every 2, 3 epochs: the last epoch checkpoints anyway
    assert json.loads((tmp_path / "cut" / "summary.json").read_text())["status"] == "completed"


def test_a_run_continued_without_ema_and_augmentation_ignores_their_saved_state(tmp_path):
    """A checkpoint of a run with --ema and --augment, continued with both turned off (--force): the saved
    average and augmenter states are left alone, the run completes without them (its weights the final ones)."""
    from deepdive.training.resume import open_resume, resume_run
    from deepdive.training.setup import run_training

    def hook(point, n):
        if (point, n) == ("checkpoint", 1):
            raise RuntimeError("the machine went away")
    argv = [*SYNTH, "--limit-train", "32", "--limit-test", "16", "-b", "16", "--epochs", "2", "--ema", "0.8",
            "--augment", "crop-flip"]
    with pytest.raises(RuntimeError, match="the machine went away"):
        run_training(resolve_config({**flags_of(*argv), "out": str(tmp_path / "run")}), hooks=hook)
    saved = torch.load(tmp_path / "run" / "state.pt", weights_only=True)
    assert saved["ema"] is not None and saved["augment"] is not None and saved["loop"]["epoch"] == 1
    assert saved["loop"]["step_in_epoch"] == 0 and saved["loop"]["order"] is None  # between epochs
    run, cfg, differences = open_resume(str(tmp_path / "run"), {"ema": None, "augment": "none"}, force=True)
    assert cfg.ema is None and cfg.augment == "none" and len(differences) == 2
    summary = resume_run(run, cfg, differences)
    assert (summary["status"], summary["epochs"], summary["weights"]) == ("completed", 2, "final")
    final = torch.load(tmp_path / "run" / "state.pt", weights_only=True)
    assert final["ema"] is None and final["augment"] is None and final["loop"]["epoch"] == 2
