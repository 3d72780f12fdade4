"""``deepdive evaluate``: a saved run measured again on its test data (or another dataset), per class too."""
from __future__ import annotations

import math
from pathlib import Path

from deepdive.data.pipeline import Split
from deepdive.errors import RunFailed, UserError
from deepdive.training.evaluation import evaluate_split, predictions_on


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
    from deepdive.training.run_data import prepare_data

    predictor, run, cfg = _open(run_dir, device)
    return run, cfg, predictor.info, predictor.engine, predictor.net, prepare_data(cfg).test


def _open(run_dir, device: str):
    """(``deepdive.load``'s predictor, the run folder, its config): the model from model.json, the data the
    run was tested on from config.json."""
    from deepdive.inference.predictor import load
    from deepdive.storage.runs import RunDir

    predictor = load(run_dir, device)
    run = RunDir.open(run_dir)
    return predictor, run, run.config()


def evaluate_run(run_dir: str | Path, dataset: str | None = None, data_dir: str | None = None,
                 device: str = "auto", per_class: bool = False) -> dict:
    """Reload a run's weights and measure them on its test split (or on another dataset's).

    The model, its normalization and test-time views are ``deepdive.load(run_dir)``'s predictor's, in its
    batches: the accuracy is that of ``predictor(images).argmax(1)`` on the same images, exactly."""
    from deepdive.config.train_config import TrainConfig
    from deepdive.data.datasets import load_dataset
    from deepdive.training.run_data import data_options, prepare_data

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
        bundle = load_dataset(other.dataset, data_options(other, test_only=True))
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
    if not math.isfinite(loss):  # finite weights whose outputs overflow: no figure of them means anything
        raise RunFailed(f"{run.path}'s model gives a loss of {loss} on the {source} images (outputs overflow to "
                        "NaN or infinity): the run diverged; retrain it, e.g. with a lower --lr")
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
