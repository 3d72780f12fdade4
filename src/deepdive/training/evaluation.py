"""The loop's evaluation: loss and accuracy of a model on a split, with test-time views.

Evaluation runs the model in eval mode (dropout off) under ``no_grad``; the
article's script measured in train mode, which ``train_mode=True`` reproduces.
Everything that measures a model - the loop, ``deepdive evaluate``, the
predictor, ``deepdive export`` - computes its views with ``tta_logits``.
"""
from __future__ import annotations

import math

from deepdive.data.pipeline import Split, iterate_batches
from deepdive.training.engines import evaluation


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
    the processes, each measuring its own share of the split (the loop's ``Trainer.evaluate``)."""
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
            logits = engine.cpu_logits(logits)
            confidence, predicted = torch.softmax(logits.to(torch.float64), dim=1).max(dim=1)
            preds.append(predicted.numpy())
            confidences.append(confidence.numpy())
            truths.append(labels.cpu().numpy())
    if not preds:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64)
    return np.concatenate(preds), np.concatenate(confidences), np.concatenate(truths)
