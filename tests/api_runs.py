"""Tiny runs that test_api.py and test_export.py share: each is trained once per session, through the
Python API (``deepdive.train``), and never modified by a test (tests that change a run work on a copy)."""
import shutil

import deepdive

_made: dict = {}

# fastnet on 3x16x16 synthetic images with --tta flip: channels-last, a data-initialised (whitened) first
# layer, BatchNorm, and the test-time views all on the path from files to probabilities.
FASTNET = dict(model="fastnet", dataset="synthetic", synthetic_shape=[3, 16, 16], synthetic_classes=4,
               widths=[8, 16], tta="flip", epochs=1, limit_train=256, limit_test=60, batch_size=64)
# simplenet trained by the from-scratch NumPy engine; its shape given as the CLI's "C,H,W" text.
SCRATCH = dict(model="simplenet", engine="scratch", dataset="synthetic", synthetic_shape="1,8,8",
               synthetic_classes=4, epochs=1, limit_train=256, limit_test=60)


def trained(name, tmp_path_factory):
    """(run folder, the summary deepdive.train returned) of run ``name`` (FASTNET or SCRATCH)."""
    if name not in _made:
        out = tmp_path_factory.mktemp(f"api-{name.lower()}") / "run"
        # pathlib.Path values, as Python callers pass them (config.json must record them as text)
        summary = deepdive.train(out=out, data_dir=out.parent / "data", **globals()[name])
        _made[name] = (out, summary)
    return _made[name]


def copy_of(run, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(run, target)
    return target
