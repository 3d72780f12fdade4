"""``deepdive predict RUN_DIR IMAGE_OR_DIR...``: top-K classes for image files.

Each file is read exactly as image-folder training data is (``load_image``:
converted to the model's channels, resized bilinearly to its input size) and
normalized with the run's own mean and std. Files that are not images are
reported and do not stop the rest.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from deepdive.errors import UserError


def collect_files(inputs: list[str]) -> list[Path]:
    """Files as given; folders expand to every file below them, in sorted order."""
    files = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for root, dirs, names in os.walk(path):
                dirs.sort()
                files.extend(Path(root) / n for n in sorted(names))
        else:
            files.append(path)
    return files


def predict_files(run_dir: str, inputs: list[str], top_k: int = 5, device: str = "auto",
                  batch_size: int = 256) -> list[dict]:
    import torch

    from deepdive.data.imagefolder import UnreadableImage, load_image
    from deepdive.data.pipeline import Normalizer
    from deepdive.engines import evaluation
    from deepdive.evaluate import tta_logits
    from deepdive.loading import load_run_model
    from deepdive.runs import RunDir

    if top_k <= 0:
        raise UserError(f"--top-k {top_k} is invalid: give a positive integer")
    run = RunDir.open(run_dir)
    cfg, info = run.config(), run.model_info()
    channels, height, width = info["input_shape"]
    classes = info["classes"]
    engine, model = load_run_model(run, cfg, info, device,
                                   Normalizer(info["mean"], info["std"], channels))
    k = min(top_k, len(classes))
    results: list[dict] = []
    pending: list[tuple[int, np.ndarray]] = []

    def flush() -> None:
        if not pending:
            return
        batch = torch.from_numpy(np.stack([a for _, a in pending])).permute(0, 3, 1, 2).contiguous()
        with evaluation(model), engine.no_grad(), engine.autocast():
            logits = tta_logits(model, engine.inputs(batch), cfg.tta)  # the views evaluate uses
        logits = torch.as_tensor(np.asarray(logits.data) if engine.name == "scratch" else logits.float().cpu())
        probs = torch.softmax(logits.to(torch.float64), dim=1)
        top = probs.topk(k, dim=1)
        for (slot, _), values, indices in zip(pending, top.values, top.indices):
            results[slot]["predictions"] = [{"class": classes[i], "probability": float(p)}
                                            for p, i in zip(values.tolist(), indices.tolist())]
        pending.clear()

    for path in collect_files(inputs):
        shown = os.fsdecode(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        results.append({"file": shown})
        try:
            if not path.is_file():
                raise UnreadableImage("no such file")
            pending.append((len(results) - 1, load_image(path, (height, width), channels)))
        except UnreadableImage as exc:
            results[-1]["error"] = f"not a readable image ({exc})"
        except OSError as exc:
            results[-1]["error"] = f"cannot read ({exc.strerror or exc})"
        if len(pending) >= batch_size:
            flush()
    flush()
    return results
