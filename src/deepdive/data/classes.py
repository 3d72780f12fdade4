"""``--classes a,b,...``: train and test on a subset of a dataset's classes.

The classes are named or indexed in the dataset's own order, and the run's labels are renumbered
0..k-1 in the order given, so ``--classes cat,dog`` makes a two-class problem whose class 0 is
"cat". Applied before ``--limit-train``/``--limit-test`` and ``--val-split``, so those count images of
the chosen classes only. (The transfer benchmark pretrains on CIFAR-10's classes 0-4 and fine-tunes
on 5-9 this way.)
"""
from __future__ import annotations

from deepdive.errors import UserError


def class_indices(wanted: list, classes: list[str]) -> list[int]:
    """Each of ``wanted`` (a class name, or an index into ``classes``) as an index; one line for any other."""
    chosen = []
    for item in wanted:
        text = str(item)
        if text in classes:
            chosen.append(classes.index(text))
        elif text.lstrip("-").isdigit() and 0 <= int(text) < len(classes):
            chosen.append(int(text))
        else:
            from deepdive.config.names import did_you_mean
            raise UserError(f"--classes: {text!r} is not a class of this dataset{did_you_mean(text, classes)}: give "
                            f"names or indices 0..{len(classes) - 1} of {', '.join(classes)}")
    if len(set(chosen)) != len(chosen):
        raise UserError(f"--classes {','.join(map(str, wanted))} names a class twice: give each class once")
    return chosen


def select_classes(bundle, wanted: list) -> None:
    """Keep only the images of ``wanted`` in every split of ``bundle``, labels renumbered in that order."""
    import torch

    chosen = class_indices(wanted, list(bundle.classes))
    mapping = torch.full((len(bundle.classes),), -1, dtype=torch.int64)
    mapping[torch.tensor(chosen)] = torch.arange(len(chosen))
    for name in ("train", "test", "val"):
        split = getattr(bundle, name)
        if split is None:
            continue
        keep = torch.nonzero(mapping[split.labels] >= 0).flatten()
        subset = split.subset(keep) if hasattr(split, "subset") else split[keep]
        subset.labels = mapping[subset.labels]
        setattr(bundle, name, subset)
    bundle.classes = [bundle.classes[i] for i in chosen]
    for name in ("train", "test"):
        counts = torch.bincount(getattr(bundle, name).labels, minlength=len(chosen))
        missing = [bundle.classes[i] for i in range(len(chosen)) if counts[i] == 0]
        if missing:
            raise UserError(f"--classes: the {name} split has no image of {', '.join(missing)}: choose classes "
                            f"that the {name} data holds")
