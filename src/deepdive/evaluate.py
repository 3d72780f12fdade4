"""Evaluation: loss and accuracy of a model on a split, and of a saved run.

Evaluation runs the model in eval mode (dropout off) under ``no_grad``; the
article's script measured in train mode, which ``train_mode=True`` reproduces.
"""
from __future__ import annotations

import math
from pathlib import Path

from deepdive.data.pipeline import Split, iterate_batches
from deepdive.engines import evaluation
from deepdive.errors import UserError


def tta_logits(model, x, mode: str = "none"):
    """Logits averaged over test-time views: ``flip`` adds the mirror image, ``flip-shift``
    also both translated by one pixel (reflect-padded). Averaging logits, not probabilities.

    The shift is ``augment.translate(x, 1, 1, pad=1)`` written as one slice of the padded batch (every
    image moves alike), so that ``deepdive export`` can trace this very function into the exported model."""
    logits = model(x)
    if mode == "none":
        return logits
    views = [logits, model(x.flip(3))]
    if mode == "flip-shift":
        import torch

        h, w = x.shape[2], x.shape[3]
        shifted = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")[:, :, 2:2 + h, 2:2 + w]
        views += [model(shifted), model(shifted.flip(3))]
    return sum(v.float() for v in views) / len(views)


def evaluate_split(engine, model, split: Split, train_mode: bool = False, tta: str = "none") -> tuple[float, float]:
    """Mean cross-entropy and accuracy (a fraction) of ``model`` on ``split`` (with test-time views ``tta``)."""
    loss_sum, correct, seen = evaluation_sums(engine, model, split, train_mode, tta)
    if seen == 0:
        return math.nan, math.nan
    return loss_sum / seen, correct / seen


def evaluation_sums(engine, model, split: Split, train_mode: bool = False, tta: str = "none") -> tuple[float, int, int]:
    """(summed cross-entropy, correct predictions, images counted): what a distributed evaluation adds up over
    the processes, each measuring its own share of the split (distributed.DistributedTrainer.evaluate)."""
    loss_sum, correct, seen = 0.0, 0, 0
    if len(split) == 0:
        return loss_sum, correct, seen
    with evaluation(model, train_mode), engine.no_grad(), engine.autocast():
        for images, labels in iterate_batches(split, engine.eval_batch_size, shuffle=False):
            logits = tta_logits(model, engine.inputs(images), tta)
            targets = engine.targets(labels)
            loss_sum += float(engine.cross_entropy(logits, targets, reduction="sum").item())
            correct += engine.correct(logits, targets)
            seen += len(labels)  # a streamed split may drop a file that turns out unreadable
    return loss_sum, correct, seen


def predictions_on(engine, model, split, tta: str = "none"):
    """(predicted class, its softmax probability, true label) of every image of ``split``, as NumPy
    arrays in the split's order: what the confusion matrix, per-class accuracy and the mistakes need."""
    import numpy as np
    import torch

    preds, confidences, truths = [], [], []
    with evaluation(model), engine.no_grad(), engine.autocast():
        for images, labels in iterate_batches(split, engine.eval_batch_size, shuffle=False):
            logits = tta_logits(model, engine.inputs(images), tta)
            logits = torch.as_tensor(np.asarray(logits.data)) if engine.name == "scratch" else logits.float().cpu()
            confidence, predicted = torch.softmax(logits.to(torch.float64), dim=1).max(dim=1)
            preds.append(predicted.numpy())
            confidences.append(confidence.numpy())
            truths.append(labels.cpu().numpy())
    if not preds:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64)
    return np.concatenate(preds), np.concatenate(confidences), np.concatenate(truths)


def confusion_matrix(truths, preds, classes: int):
    """counts[i, j]: images of class i predicted as class j."""
    import numpy as np

    return np.bincount(truths * classes + preds, minlength=classes * classes).reshape(classes, classes)


def per_class_table(matrix, classes: list[str]) -> list[dict]:
    """Per class: images, correct, accuracy (a fraction; None for a class with no test image)."""
    rows = []
    for i, name in enumerate(classes):
        total, correct = int(matrix[i].sum()), int(matrix[i, i])
        rows.append({"class": name, "images": total, "correct": correct,
                     "accuracy": correct / total if total else None})
    return rows


def open_run_for_test(run_dir: str | Path, device: str = "auto"):
    """A run folder's (run, config, model.json, engine, model with its weights, test split), as the run saw it:
    the engine and model are those of ``deepdive.load(run_dir)``'s predictor."""
    from deepdive.data import prepare_data

    predictor, run, cfg = _open(run_dir, device)
    return run, cfg, predictor.info, predictor.engine, predictor.net, prepare_data(cfg).test


def _open(run_dir, device: str):
    """(``deepdive.load``'s predictor, the run folder, its config): the model from model.json, the data the
    run was tested on from config.json."""
    from deepdive.api import load
    from deepdive.runs import RunDir

    predictor = load(run_dir, device)
    run = RunDir.open(run_dir)
    return predictor, run, run.config()


def evaluate_run(run_dir: str | Path, dataset: str | None = None, data_dir: str | None = None,
                 device: str = "auto", per_class: bool = False) -> dict:
    """Reload a run's weights and measure them on its test split (or on another dataset's).

    The model, its normalization and test-time views are ``deepdive.load(run_dir)``'s predictor's, in its
    batches: the accuracy is that of ``predictor(images).argmax(1)`` on the same images, exactly."""
    from deepdive.config import TrainConfig
    from deepdive.data import load_dataset, prepare_data

    predictor, run, cfg = _open(run_dir, device)
    info = predictor.info
    if dataset is None and data_dir is None:
        test = prepare_data(cfg).test
        source = cfg.dataset
    else:
        values = cfg.to_dict()
        values.update(dataset=dataset or cfg.dataset, data_dir=data_dir or cfg.data_dir,
                      limit_train=None, val_split=None, normalization="dataset", recipe=None)
        other = TrainConfig.from_dict(values)
        bundle = load_dataset(other.dataset, other, test_only=True)
        if other.limit_test and other.dataset == cfg.dataset:
            from deepdive.data.pipeline import balanced_subset
            bundle.test = balanced_subset(bundle.test, other.limit_test, cfg.seed + 1)
        test = _align_classes(bundle, info)
        source = other.dataset
    if tuple(test.images.shape[1:]) != tuple(info["input_shape"]):
        raise UserError(f"the {source} images are {tuple(test.images.shape[1:])} but the model takes "
                        f"{tuple(info['input_shape'])}: use data of the model's input shape (e.g. --image-size)")
    engine, model, tta = predictor.engine, predictor.net, predictor.tta
    loss, accuracy = evaluate_split(engine, model, test, tta=tta)
    result = {"run": str(run.path), "dataset": source, "examples": len(test), "tta": tta,
              "weights": "ema" if predictor.ema else "final", "test_loss": loss, "test_accuracy": accuracy}
    if per_class:
        preds, _, truths = predictions_on(engine, model, test, tta)
        result["per_class"] = per_class_table(confusion_matrix(truths, preds, len(info["classes"])), info["classes"])
    return result


def _align_classes(bundle, info) -> Split:
    """Map another dataset's labels onto the run's class indices, by class name where they match."""
    import torch

    run_classes = list(info["classes"])
    if len(bundle.classes) != len(run_classes):
        raise UserError(f"{bundle.name} has {len(bundle.classes)} classes but the model knows {len(run_classes)}: "
                        "evaluate on data with the same classes")
    if sorted(bundle.classes) != sorted(run_classes) or bundle.classes == run_classes:
        return bundle.test  # same order, or unnamed alike: labels are used as they are
    mapping = torch.tensor([run_classes.index(c) for c in bundle.classes], dtype=torch.int64)
    return Split(bundle.test.images, mapping[bundle.test.labels])
