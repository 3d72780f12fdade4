"""Small units that mutation testing found unchecked (or checked only in child processes): the batched augmenter's
draws, the article-window loss and the stopwatch's totals, the engines' build/inputs/autocast, the loop's
evaluation and TensorBoard hand-over, weight transfer, --init-from's option check and the fine-tuning head and
freezer. Each outcome is compared with a value computed here (by hand, image by image) or with the exact message."""
import json
import math
import warnings
from collections import OrderedDict
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import SYNTH
from deepdive.errors import UserError
from deepdive.training.train_state import Stopwatch, TrainState


# -- data.augment.BatchAugmenter, against a by-hand version ----------------------------------------------------------
class ByHand:
    """The augmenter's specification, one image at a time: generator seeded seed + 7919 (flip bits, then shifts,
    drawn for the whole global batch), first-epoch flip bits from a generator seeded seed + 104729, complemented in
    odd epochs; flip = mirror the last axis; crop = shift by (dx, dy) within a reflect-padded border."""

    def __init__(self, kind, pad, num_examples, seed):
        self.kind, self.pad = kind, pad
        self.g = torch.Generator().manual_seed(seed + 7919)
        self.first = torch.rand(num_examples, generator=torch.Generator().manual_seed(seed + 104729)) < 0.5
        self.drawn = []

    def __call__(self, images, index, epoch, rows=None):
        n = images.shape[0]
        first, total = rows or (0, n)
        if self.kind in ("flip", "crop-flip"):
            flips = (torch.rand(total, generator=self.g) < 0.5)[first:first + n]
        else:
            flips = self.first[index] if epoch % 2 == 0 else ~self.first[index]
        shifts = None
        if self.kind.startswith("crop") and self.pad > 0:
            shifts = torch.randint(-self.pad, self.pad + 1, (2, total), generator=self.g)[:, first:first + n]
        self.drawn.append((flips, shifts))
        out = []
        h, w = images.shape[2:]
        for i in range(n):
            image = images[i].flip(-1) if flips[i] else images[i]
            if shifts is not None:
                p, dx, dy = self.pad, int(shifts[0, i]), int(shifts[1, i])
                padded = F.pad(image[None], (p, p, p, p), mode="reflect")[0]
                image = padded[:, p + dy:p + dy + h, p + dx:p + dx + w]
            out.append(image)
        return torch.stack(out) if out else images


def batches(n=6):
    images = torch.arange(n * 2 * 5 * 6, dtype=torch.float32).view(n, 2, 5, 6)  # 5 high, 6 wide: dx ≠ dy
    return images, torch.tensor([7, 2, 9, 0, 4, 5])[:n]


@pytest.mark.parametrize("kind, pad", [("flip", 0), ("crop-flip", 1), ("crop-flip", 2), ("crop-flip", 0),
                                       ("crop-altflip", 2), ("altflip", 0)])
def test_the_augmenter_draws_as_specified(kind, pad):
    from deepdive.data.augment import BatchAugmenter

    augmenter, by_hand = BatchAugmenter(kind, pad, 10, seed=3), ByHand(kind, pad, 10, seed=3)
    images, index = batches()
    for epoch, rows in ((0, None), (1, None), (2, (2, 9)), (3, None)):  # consecutive calls: the generator moves on
        expected = by_hand(images, index, epoch, rows)
        assert torch.equal(augmenter(images, index, epoch, rows), expected), (epoch, rows)
    flips = torch.cat([f for f, _ in by_hand.drawn])
    assert flips.any() and not flips.all()  # (the draws tell flipped from unflipped images)
    if kind.startswith("crop") and pad:
        shifts = torch.cat([s for _, s in by_hand.drawn], dim=1)
        assert (shifts[0] != shifts[1]).any() and shifts.min() == -pad and shifts.max() == pad


def test_no_augmentation_and_one_image():
    from deepdive.data.augment import BatchAugmenter

    images, index = batches()
    assert BatchAugmenter("none", 2, 10, seed=3)(images, index, 0) is images
    augmenter, by_hand = BatchAugmenter("crop-flip", 2, 10, seed=1), ByHand("crop-flip", 2, 10, seed=1)
    one, changed = images[:1], []
    for epoch in range(4):  # a batch of one image is augmented too
        expected = by_hand(one, index[:1], epoch)
        assert torch.equal(augmenter(one, index[:1], epoch), expected)
        changed.append(not torch.equal(expected, one))
    assert any(changed)
    empty = augmenter(images[:0], index[:0], 0, (3, 3))  # an empty share of a global batch: nothing, draws made
    assert empty.shape == (0, 2, 5, 6)
    by_hand(images[:0], index[:0], 0, (3, 3))
    assert torch.equal(augmenter(images, index, 1), by_hand(images, index, 1))


def test_the_augmenter_flips_on_the_images_device_and_refuses_unknown_kinds():
    from deepdive.data.augment import BatchAugmenter

    on_meta = BatchAugmenter("flip", 0, 10, seed=3)(torch.ones(4, 1, 2, 2, device="meta"), torch.arange(4), 0)
    assert on_meta.device.type == "meta" and on_meta.shape == (4, 1, 2, 2)
    with pytest.raises(ValueError) as raised:
        BatchAugmenter("rotate", 2, 10, seed=3)
    assert str(raised.value) == "unknown augmentation 'rotate'"


def test_a_draw_of_exactly_one_half_is_no_flip():
    """A flip bit is a draw below 1/2: of torch.rand's 2^24 equally likely values exactly half flip. With seed 0 a
    global batch of 2^24 holds a draw of exactly 0.5 in each generator (found here, not assumed)."""
    from deepdive.data.augment import BatchAugmenter

    total = 2 ** 24
    augmenter = BatchAugmenter("flip", 0, total, seed=0)
    draws = torch.rand(total, generator=torch.Generator().manual_seed(0 + 7919))
    at = int((draws == 0.5).nonzero()[0])
    image = torch.arange(6.0).view(1, 1, 2, 3)
    assert torch.equal(augmenter(image, torch.tensor([0]), 0, (at, total)), image)  # that image is not flipped
    first = torch.rand(total, generator=torch.Generator().manual_seed(0 + 104729))
    at = int((first == 0.5).nonzero()[0])
    assert not augmenter.first_flips[at] and int(augmenter.first_flips.sum()) == int((first < 0.5).sum())


# -- train_state: the article's printed loss and the stopwatch's totals -----------------------------------------------
def test_the_article_window_loss():
    assert TrainState(last_block_loss=0.25, block_loss_sum=9.0, block_steps=3).article_window_loss() == 0.25
    assert TrainState(block_loss_sum=3.0, block_steps=4).article_window_loss() == 0.75  # no full block yet
    assert TrainState().article_window_loss() is None


def test_the_stopwatch_state_counts_the_running_phase():
    times = iter([10.0, 13.5, 20.0, 21.25])
    watch = Stopwatch(lambda: next(times), {"eval": 2.0})
    watch.start("train")  # at 10.0
    assert watch.state() == {"eval": 2.0, "train": 3.5}  # at 13.5
    watch.stop()  # at 20.0: train 10.0
    assert watch.state() == {"eval": 2.0, "train": 10.0}
    assert Stopwatch(lambda: 0.0).state() == {}


# -- the engines ------------------------------------------------------------------------------------------------------
def test_the_torch_engine_builds_in_the_memory_format_asked_and_autocasts_to_bfloat16():
    from deepdive.training.engines import TorchEngine

    conv = nn.Conv2d(3, 4, 3)
    assert TorchEngine("cpu").build(conv).weight.is_contiguous()
    built = TorchEngine("cpu", channels_last=True).build(nn.Conv2d(3, 4, 3))
    assert built.weight.is_contiguous(memory_format=torch.channels_last) and not built.weight.is_contiguous()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (autocast on "cuda" without a GPU warns and disables itself)
        for device in ("cpu", "cuda"):
            assert TorchEngine(device, amp=True).autocast().fast_dtype == torch.bfloat16
    assert not isinstance(TorchEngine("cpu").autocast(), torch.autocast)


def test_the_scratch_engine_runs_one_torch_thread_and_keeps_its_dtype():
    import deepdive.scratch.nn as snn
    from deepdive.training.engines import ScratchEngine

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        engine = ScratchEngine(normalizer=lambda images: images.float() / 2)
        assert torch.get_num_threads() == 1
        model = engine.build(snn.Linear(3, 2))
        assert all(p.data.dtype == np.float32 for p in model.parameters())
        assert all(p.data.dtype == np.float64 for p in ScratchEngine(dtype=np.float64).build(snn.Linear(3, 2))
                   .parameters())
        x = engine.inputs(torch.tensor([[1, 2, 3]], dtype=torch.uint8))
        assert x.data.dtype == np.float32 and np.array_equal(x.data, np.array([[0.5, 1.0, 1.5]], dtype=np.float32))
    finally:
        torch.set_num_threads(threads)


def test_the_process_rank_comes_from_torchrun_rank_variable(monkeypatch):
    from deepdive.training.ddp.torchrun import env_rank

    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("rank", "5")
    assert env_rank() == 3
    monkeypatch.delenv("RANK")
    assert env_rank() == 0


# -- the loop: evaluation and the TensorBoard hand-over --------------------------------------------------------------
def test_evaluation_passes_its_options_and_an_empty_split_has_no_figures(monkeypatch):
    import deepdive.training.evaluation as evaluation
    from deepdive.training.ddp.group import OneProcess
    from deepdive.training.loop import Trainer

    asked = []

    def sums(engine, model, split, **kwargs):
        asked.append(kwargs)
        return split
    monkeypatch.setattr(evaluation, "evaluation_sums", sums)
    trainer = SimpleNamespace(watch=Stopwatch(lambda: 0.0), engine=None, eval_model=lambda: None,
                              group=OneProcess(), cfg=SimpleNamespace(tta="flip"))
    assert Trainer.evaluate(trainer, (3.0, 3, 4), train_mode=True) == (0.75, 0.75)
    assert asked.pop() == {"tta": "flip", "train_mode": True}
    loss, accuracy = Trainer.evaluate(trainer, (0.0, 0, 0))
    assert math.isnan(loss) and math.isnan(accuracy) and asked.pop() == {"tta": "flip"}


def test_each_epoch_record_reaches_tensorboard(tmp_path, monkeypatch):
    from deepdive.config.resolve import resolve_config
    from deepdive.commands.train_flags import parse_train_flags
    from deepdive.training.setup import run_training
    from deepdive.training.tensorboard import TensorBoardLog

    written = []
    monkeypatch.setattr(TensorBoardLog, "epoch", lambda self, epoch, record, lr, model: written.append(
        (epoch, dict(record), lr, type(model).__name__)))
    argv = [*SYNTH, "--limit-train", "16", "--limit-test", "8", "-b", "8", "--epochs", "2", "--tensorboard"]
    run_training(resolve_config({**parse_train_flags(argv), "out": str(tmp_path / "run")}))
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [(e, r, lr) for e, r, lr, _ in written] == [(r["epoch"], r, r["lr"]) for r in records]
    assert [r["epoch"] for r in records] == [1, 2] and all(name != "NoneType" for *_, name in written)


# -- models.transfer.transfer_weights ---------------------------------------------------------------------------------
def small_net():
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 2, 3), bn=nn.BatchNorm2d(2), a=nn.Linear(2, 2),
                                     b=nn.Linear(2, 2), c=nn.Linear(2, 2), d=nn.Linear(2, 2)))


def test_transfer_loads_what_fits_and_names_what_stays_fresh():
    """Of the 15 tensors, those of matching name and shape load (a 0-d buffer saved as (1,) too); the layers left
    fresh are named, four at most and a count of the rest; NumPy arrays load as well."""
    from deepdive.models.transfer import transfer_weights

    source = small_net()
    state = {k: v.clone() + 1 for k, v in source.state_dict().items()}
    state["bn.num_batches_tracked"] = torch.tensor([7])
    model = small_net()
    assert transfer_weights(model, state, "RUN") == "loaded 15 of the model's 15 tensors from RUN"
    assert all(torch.equal(model.state_dict()[k], v.reshape(model.state_dict()[k].shape)) for k, v in state.items())
    del state["bn.num_batches_tracked"]  # a missing counter is not a fresh layer
    assert transfer_weights(small_net(), state, "RUN") == "loaded 14 of the model's 15 tensors from RUN"
    state["bn.num_batches_tracked"] = torch.tensor([1, 2])  # a counter of another size does not fit
    assert transfer_weights(small_net(), state, "RUN") == "loaded 14 of the model's 15 tensors from RUN"
    for k in ("a.weight", "b.bias", "c.weight", "d.bias"):
        state[k] = torch.zeros(5)
    assert transfer_weights(small_net(), state, "RUN") == ("loaded 10 of the model's 15 tensors from RUN; newly "
                                                           "initialised: a, b, c, d")
    state["conv.bias"] = torch.zeros(7)
    assert transfer_weights(small_net(), state, "RUN") == ("loaded 9 of the model's 15 tensors from RUN; newly "
                                                           "initialised: a, b, c, conv and 1 more")
    state["bn.weight"] = torch.zeros(3)
    assert transfer_weights(small_net(), state, "RUN") == ("loaded 8 of the model's 15 tensors from RUN; newly "
                                                           "initialised: a, b, bn, c and 2 more")
    arrays = {k: v.numpy() + 2 for k, v in source.state_dict().items() if v.dim()}  # same shapes: NumPy is fine
    model = small_net()
    assert transfer_weights(model, arrays, "FILE") == ("loaded 14 of the model's 15 tensors from FILE")
    assert all(np.array_equal(model.state_dict()[k].numpy(), v) for k, v in arrays.items())


def test_transfer_refuses_weights_of_which_less_than_half_fit():
    from deepdive.models.transfer import transfer_weights

    own = small_net().state_dict()  # 15 tensors: conv 2, bn 5, a-d 2 each
    keys = list(own)
    fitting = {k: own[k] for k in keys[8:]}  # 7 of 15: 14 < 15 (though 21 > 15)
    with pytest.raises(UserError) as raised:
        transfer_weights(small_net(), fitting, "RUN")
    assert str(raised.value) == ("RUN does not fit this model: only 7 of its 15 tensors match by name and shape "
                                 "(e.g. conv.weight): give weights of the same architecture")
    fitting = {k: own[k] for k in keys[:7]}
    with pytest.raises(UserError) as raised:
        transfer_weights(small_net(), fitting, "RUN")
    assert str(raised.value) == ("RUN does not fit this model: only 7 of its 15 tensors match by name and shape "
                                 "(e.g. a.weight): give weights of the same architecture")
    half = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))  # 2 of 4 fit: exactly half is enough
    assert transfer_weights(half, {"0.weight": torch.ones(2, 2), "0.bias": torch.ones(2)}, "RUN") == \
        "loaded 2 of the model's 4 tensors from RUN; newly initialised: 1"


# -- training.finetune -------------------------------------------------------------------------------------------------
def test_the_head_is_the_last_layer_with_one_output_per_class():
    from deepdive.training.finetune import head_names

    convs = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Conv2d(4, 10, 3), nn.Conv2d(10, 10, 1), nn.Conv2d(10, 4, 1),
                          nn.Flatten())
    assert head_names(convs, 10) == {"2.weight", "2.bias"}  # a 1x1 convolution to 10 channels; not the 3x3
    assert head_names(nn.Sequential(nn.Conv2d(3, 5, 1), nn.Conv2d(5, 5, (1, 2))), 5) == {"0.weight", "0.bias"}
    assert head_names(nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 3)), 3) == {"1.weight", "1.bias"}
    assert head_names(nn.Linear(4, 3), 3) == {"weight", "bias"}  # the model itself is the head
    with pytest.raises(UserError) as raised:
        head_names(nn.Sequential(nn.Linear(4, 3), nn.Conv2d(3, 7, 3)), 7)
    assert str(raised.value) == ("this model has no final layer with 7 outputs to treat as the head: drop "
                                 "--freeze-backbone/--head-lr")


def test_the_freezer_puts_the_backbone_norms_only_in_eval_mode_while_frozen():
    from deepdive.training.finetune import Freezer

    model = nn.Sequential(OrderedDict(
        features=nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)),
        head=nn.Sequential(nn.BatchNorm1d(4), nn.Linear(4, 3))))
    head = {f"head.{k}" for k in model.head.state_dict()}  # a head with a norm of its own
    freezer = Freezer(model, head, until_epoch=2)
    assert freezer.norms == [model.features[1]]
    model.train()
    freezer.apply(model, 0)
    assert not model.features[1].training and model.features[0].training and model.head[0].training
    assert model.training and model.head.training and model.head[1].training
    assert not any(p.requires_grad for p in model.features.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    model.train()
    freezer.apply(model, 2)  # unfrozen: the norms train again
    assert all(m.training for m in model.modules()) and all(p.requires_grad for p in model.parameters())


def test_init_from_a_run_of_other_options_names_each_difference(cli, tmp_path):
    from deepdive.models.registry import build_model
    from deepdive.training.finetune import init_from_run

    out = tmp_path / "run"
    assert cli("train", *SYNTH, "--limit-train", "16", "--limit-test", "8", "-b", "8", "--epochs", "1",
               "--out", out).code == 0
    info = json.loads((out / "model.json").read_text())
    theirs = info["options"]
    assert isinstance(theirs, dict)
    options = {**theirs, "extra": 1, "zeta": "z"}
    model = build_model("simplenet", nn, F, (1, 8, 8), 4)
    with pytest.raises(UserError) as raised:
        init_from_run(model, "simplenet", info["classes"], (1, 8, 8), str(out), options)
    assert str(raised.value) == (f"--init-from {out} was built with extra=None, zeta=None, this run with extra=1, "
                                 "zeta='z': give the flags it was trained with (e.g. --pretrained for a pretrained "
                                 "run's resize and normalization, --small-input, --widths)")
