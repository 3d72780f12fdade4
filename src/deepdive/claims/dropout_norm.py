"""Claims 12 and 13: dropout at test time, and normalization, on the article's CNN and CIFAR-10 (torch).

Both train the article's ``Net`` (``article-cnn``) as the article does - Adam
1e-3, batch 16 - for one pass over a small class-balanced CIFAR-10 subset
read by ``deepdive.data.datasets`` from ``--data-dir`` (never downloaded here: without
the data the claims say "not measured" and how to get it).

Claim 12. ``nn.Dropout(0.5)`` zeroes half of fc1's outputs in training mode
and is the identity in eval mode; the article measured its test accuracy
without ``net.eval()``. The same trained network is measured both ways.
Dropout is Net's only layer that depends on the mode and fc2 follows it
directly, so the repeated train-mode passes (dropout draws differ each time)
reuse the dropout's input captured in one pass; the first train-mode pass runs
the whole network.

Claim 13. The article's script normalizes CIFAR-10's three channels with
MNIST's (0.1307, 0.3081): its inputs have mean ≈ 1.2, not 0. The same network,
initialisation and batch order are trained on inputs normalized with CIFAR-10's
own statistics and with MNIST's (the two runs differ in nothing else), and
the inputs' statistics, the training loss and the test accuracy are compared.
"""
from __future__ import annotations

import contextlib
import functools

import numpy as np

from deepdive.claims import CONDITIONAL, FAILS, HOLDS, NOT_MEASURED, Result

BATCH, LR, TRAIN_MODE_PASSES = 16, 1e-3, 20


def _sizes(fast: bool) -> tuple[int, int]:
    return (160, 100) if fast else (5120, 2000)


def data_hint(data_dir: str) -> str:
    return (f"put CIFAR-10 (cifar-10-batches-py/) in {data_dir}: `deepdive train --dataset cifar10 --data-dir "
            f"{data_dir} --epochs 1 --limit-train 100` downloads it (or ./quickstart.sh), then run "
            f"`deepdive claims dropout-eval normalization --data-dir {data_dir}`")


@functools.lru_cache(maxsize=2)
def _subsets(data_dir: str, fast: bool, seed: int):
    """CIFAR-10's train and test subsets, as ``deepdive train --limit-train/--limit-test`` takes them."""
    from pathlib import Path

    from deepdive.data.datasets import DataOptions, load_dataset
    from deepdive.data.cifar import FOLDER
    from deepdive.data.pipeline import balanced_subset
    from deepdive.errors import UserError

    if not (Path(data_dir) / FOLDER).is_dir():
        raise UserError(f"CIFAR-10 not found: {Path(data_dir) / FOLDER} does not exist")
    bundle = load_dataset("cifar10", DataOptions(data_dir=data_dir, download=False))
    n_train, n_test = _sizes(fast)
    return (bundle, balanced_subset(bundle.train, n_train, seed), balanced_subset(bundle.test, n_test, seed + 1))


@contextlib.contextmanager
def torch_threads(fast: bool):
    """torch's threads for the experiment (as ``deepdive train`` chooses them; one for the fast setting's few
    tiny batches, where a second thread only spins), the caller's restored after."""
    import torch

    from deepdive.training.threads import set_threads

    before = torch.get_num_threads()
    set_threads(1 if fast else None, "article-cnn")
    try:
        yield
    finally:
        torch.set_num_threads(before)


@functools.lru_cache(maxsize=4)
def trained(data_dir: str, fast: bool, seed: int, normalization: str) -> dict:
    """One pass of the article's training over the subset; claims 12 and 13 share the MNIST-normalized run."""
    import torch

    from deepdive.data.pipeline import MNIST_MEAN_STD, Normalizer, iterate_batches
    from deepdive.models.registry import build_model

    bundle, train, test = _subsets(data_dir, fast, seed)
    mean, std = MNIST_MEAN_STD if normalization == "mnist" else (bundle.mean, bundle.std)
    normalize = Normalizer(mean, std, bundle.input_shape[0])
    torch.manual_seed(seed)
    model = build_model("article-cnn", torch.nn, torch.nn.functional, bundle.input_shape, bundle.num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    losses = []
    model.train()
    for images, labels in iterate_batches(train, BATCH, shuffle=True, generator=torch.Generator().manual_seed(seed)):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(normalize(images)), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    x = normalize(train.images)
    return {"model": model, "losses": losses, "normalize": normalize, "test": test, "n_train": len(train),
            "input_mean": float(x.mean()), "input_std": float(x.std()), "mean": list(mean), "std": list(std)}


def measure_test(run: dict, seed: int, train_mode: bool = True) -> dict:
    """Test logits in eval mode and, with ``train_mode``, the accuracies of ``TRAIN_MODE_PASSES`` train-mode
    passes."""
    import torch

    model, test, normalize = run["model"], run["test"], run["normalize"]
    x, labels = normalize(test.images), test.labels
    captured = []
    hook = model.dropout.register_forward_hook(lambda module, inputs, output: captured.append(inputs[0]))
    torch.manual_seed(seed + 3)
    try:
        with torch.no_grad():
            model.eval()
            eval_logits = model(x)
            passes = TRAIN_MODE_PASSES if train_mode else 0
            model.train()
            accuracies = [float((model(x).argmax(1) == labels).float().mean())] if passes else []
            hidden = captured[0]  # fc1's ReLU output: what dropout receives, the same in both modes
            for _ in range(passes - 1):
                logits = model.fc2(torch.nn.functional.dropout(hidden, model.dropout.p, training=True))
                accuracies.append(float((logits.argmax(1) == labels).float().mean()))
    finally:
        hook.remove()
        model.eval()
    return {"eval_logits": eval_logits, "eval_accuracy": float((eval_logits.argmax(1) == labels).float().mean()),
            "eval_loss": float(torch.nn.functional.cross_entropy(eval_logits, labels)), "train_mode": accuracies}


def _not_measured(exc: Exception, data_dir: str, setup: dict) -> Result:
    return Result(setup, {}, NOT_MEASURED, f"{exc}; {data_hint(data_dir)}", "CIFAR-10 missing")


def _setup(fast: bool, data_dir: str) -> dict:
    n_train, n_test = _sizes(fast)
    return {"model": "article-cnn (the article's Net)", "data": f"CIFAR-10 from {data_dir}, class-balanced subsets: "
            f"{n_train} train, {n_test} test images", "training": f"one pass, Adam lr {LR}, batch {BATCH}"}


def dropout_eval(fast: bool = False, seed: int = 0, data_dir: str = "./data") -> Result:
    from deepdive.errors import UserError

    setup = {**_setup(fast, data_dir), "normalization": "MNIST's (0.1307, 0.3081), as the article's script",
             "train_mode_passes": TRAIN_MODE_PASSES}
    try:
        with torch_threads(fast):
            run = trained(str(data_dir), fast, seed, "mnist")
            measured = measure_test(run, seed)
    except UserError as exc:
        return _not_measured(exc, data_dir, setup)
    train_mode = np.array(measured["train_mode"])
    gap = measured["eval_accuracy"] - train_mode.mean()
    spread = train_mode.std(ddof=1) / np.sqrt(len(train_mode))
    numbers = {"eval_mode_accuracy": measured["eval_accuracy"], "train_mode_accuracy_mean": float(train_mode.mean()),
               "train_mode_accuracy_std": float(train_mode.std(ddof=1)),
               "train_mode_accuracies": measured["train_mode"],
               "difference": float(gap), "test_images": len(run["test"]), "train_images": run["n_train"],
               "final_train_loss": run["losses"][-1], "standard_error": float(spread)}
    verdict = HOLDS if gap > 0 and gap > 2 * spread else FAILS  # the paired gap against its standard error
    explanation = (f"eval mode {100 * measured['eval_accuracy']:.1f}%, train mode {100 * train_mode.mean():.1f}% ± "
                   f"{100 * train_mode.std(ddof=1):.1f} over {len(train_mode)} dropout draws: dropout left on costs "
                   f"{100 * gap:.1f} points" + ("" if verdict == HOLDS else ", not more than the draws' noise "
                                                f"(2 standard errors: {200 * spread:.1f})"))
    return Result(setup, numbers, verdict, explanation, f"eval {100 * measured['eval_accuracy']:.1f}% vs train mode "
                  f"{100 * train_mode.mean():.1f}%", {"run": run, "measured": measured})


def plot_dropout_eval(result: Result, out) -> None:
    from deepdive.claims.common import figure, save_figure

    fig, axes = figure(2, 4.0)
    if result.verdict == NOT_MEASURED:
        _empty(axes, result)
    else:
        n = result.numbers
        axes[0].hist([100 * a for a in n["train_mode_accuracies"]], bins=10, color="tab:orange",
                     label="train mode (dropout on), one bar per draw")
        axes[0].axvline(100 * n["eval_mode_accuracy"], color="tab:blue", linewidth=2, label="eval mode")
        axes[0].set_xlabel("test accuracy (%)")
        axes[0].legend(fontsize=8)
        _loss_curve(axes[1], {"MNIST normalization": result.arrays["run"]["losses"]})
    save_figure(fig, out)


def normalization(fast: bool = False, seed: int = 0, data_dir: str = "./data") -> Result:
    from deepdive.errors import UserError

    setup = {**_setup(fast, data_dir), "compared": "CIFAR-10's own mean/std vs MNIST's (0.1307, 0.3081); the same "
             "initialisation and batch order"}
    try:
        with torch_threads(fast):
            runs = {name: trained(str(data_dir), fast, seed, name) for name in ("dataset", "mnist")}
            tested = {name: measure_test(run, seed, train_mode=False) for name, run in runs.items()}
    except UserError as exc:
        return _not_measured(exc, data_dir, setup)
    numbers = {}
    for name, run in runs.items():
        measured = tested[name]
        tail = run["losses"][-max(1, len(run["losses"]) // 3):]
        numbers[name] = {"mean": run["mean"], "std": run["std"], "input_mean": run["input_mean"],
                         "input_std": run["input_std"], "train_loss_last_third": float(np.mean(tail)),
                         "test_accuracy": measured["eval_accuracy"], "test_loss": measured["eval_loss"]}
    own, mnist = numbers["dataset"], numbers["mnist"]
    centred = abs(own["input_mean"]) < 0.2 and abs(own["input_std"] - 1) < 0.2
    better_loss = (own["test_loss"] < mnist["test_loss"]
                   and own["train_loss_last_third"] < mnist["train_loss_last_third"])
    gain = own["test_accuracy"] - mnist["test_accuracy"]
    if centred and better_loss and gain > 0.02:
        verdict = HOLDS
    elif centred and (better_loss or gain > 0):
        verdict = CONDITIONAL
    else:
        verdict = FAILS
    explanation = (f"CIFAR-10's own statistics give inputs of mean {own['input_mean']:.2f}, std "
                   f"{own['input_std']:.2f}; "
                   f"MNIST's give {mnist['input_mean']:.2f}, {mnist['input_std']:.2f}; after one pass: test accuracy "
                   f"{100 * own['test_accuracy']:.1f}% vs {100 * mnist['test_accuracy']:.1f}%, test loss "
                   f"{own['test_loss']:.3f} vs {mnist['test_loss']:.3f}, training loss (last third) "
                   f"{own['train_loss_last_third']:.3f} vs {mnist['train_loss_last_third']:.3f}")
    if verdict == CONDITIONAL:
        explanation += " - a small effect on this short run, one seed"
    elif verdict == FAILS and centred:
        explanation += " - the data's own statistics centre the inputs but bought nothing measurable on this short run"
    numbers["accuracy_gain"] = gain
    return Result(setup, numbers, verdict, explanation, f"own stats {100 * own['test_accuracy']:.1f}% vs MNIST's "
                  f"{100 * mnist['test_accuracy']:.1f}%", {"runs": runs})


def plot_normalization(result: Result, out) -> None:
    from deepdive.claims.common import figure, save_figure

    fig, axes = figure(2, 4.0)
    if result.verdict == NOT_MEASURED:
        _empty(axes, result)
    else:
        runs = result.arrays["runs"]
        _loss_curve(axes[0], {"CIFAR-10's own mean/std": runs["dataset"]["losses"],
                              "MNIST's (the article's script)": runs["mnist"]["losses"]})
        names = ["CIFAR-10's own", "MNIST's"]
        accuracies = [100 * result.numbers[k]["test_accuracy"] for k in ("dataset", "mnist")]
        axes[1].bar(names, accuracies, color=["tab:blue", "tab:orange"])
        for i, a in enumerate(accuracies):
            axes[1].text(i, a, f"{a:.1f}%", ha="center", va="bottom")
        axes[1].set_ylabel("test accuracy after one pass (%)")
    save_figure(fig, out)


def _loss_curve(ax, curves: dict) -> None:
    for label, losses in curves.items():
        window = max(1, len(losses) // 20)
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(np.arange(window, len(losses) + 1), smooth, label=label)
    ax.set_xlabel("batch")
    ax.set_ylabel("training loss (moving mean)")
    ax.legend(fontsize=8)


def _empty(axes, result: Result) -> None:
    for ax in axes:
        ax.axis("off")
    axes[0].text(0, 0.5, "not measured: CIFAR-10 is missing", fontsize=11)
