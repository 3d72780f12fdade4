"""``deepdive export RUN --format onnx|torchscript|exported-program [--out FILE]``: a run's model for other runtimes.

What is exported is the run's whole inference, not the bare network: a module that takes **uint8 pixels**
(N, C, H, W) - RGB, or grey for one channel, already at the model's H x W - normalizes them with the run's
mean and std, runs the run's test-time views (``training.evaluation.tta_logits``: the mirror image, the one-pixel
shifts) and returns float32 **logits** (N, classes), their average over the views. Softmax of them is what
``deepdive.load(run)(images)`` returns. The batch dimension is free. Resizing is not inside: a file is
fitted to H x W as ``data.imagefolder.load_image`` does (``deepdive.load(run).read_file`` gives that array).
A side file FILE.json says all of this for programs that read it: input name, dtype, layout and shape,
classes, mean/std, the views, the output.

Every file is checked before it is written: the bytes are reloaded (``torch.jit.load``,
``torch.export.load``) or run by onnxruntime, on sample images in a batch of another size than the one
traced, and compared with ``deepdive.load``'s predictor (float32) on the same images. The largest
difference is printed beside the tolerance; above it the export fails (exit 1) and nothing is written.
Files are written atomically. A scratch-engine run is exported as the same architecture rebuilt on
torch from its weights (the families are written once for both engines; ``inference.predictor.Predictor.model``).
"""
from __future__ import annotations

import io
from pathlib import Path

from deepdive.errors import RunFailed, UserError, first_line

# format -> (default file name in the run folder, accepted suffixes of --out)
FORMATS = {"onnx": ("model.onnx", (".onnx",)), "torchscript": ("model.ts", (".ts", ".pt")),
           "exported-program": ("model.pt2", (".pt2",))}
TOLERANCE = 1e-4  # max abs difference of the logits (float32 through another runtime: ~1e-6 is typical)
TRACE_BATCH, CHECK_BATCH = 2, 3  # checked on another batch size than traced: the batch dimension is proven free
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")
ONNX_INSTALL = "pip install 'deepdive[onnx]'"
INPUT_NAME, OUTPUT_NAME = "images", "logits"


def difference_line(difference: float, tolerance: float) -> str:
    return f"max abs difference vs PyTorch: {difference:.3g} (tolerance {tolerance:g})"


def export_run(run_dir, fmt: str, out=None) -> dict:
    """Export run ``run_dir`` to ``out`` (default RUN/model.<ext>) in format ``fmt``; checked, then written."""
    from deepdive.inference.predictor import load, open_run_folder
    from deepdive.storage.files import output_file

    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if fmt == "onnx":
        require_onnx()
    open_run_folder(run_dir)  # a missing run says so before a path inside it is judged
    default, suffixes = FORMATS[fmt]
    out = Path(out) if out is not None else Path(run_dir) / default
    if out.is_dir():  # output_file would suggest a generic name: this one says what export writes
        raise UserError(f"--out {out} is a folder: give a file path, e.g. {out / default}")
    out = output_file(out, suffixes)
    side = Path(f"{out}.json")
    check_destinations(Path(run_dir), out, side)
    predictor = load(run_dir, device="cpu", amp=False)  # exported in float32, compared in float32
    module = export_module(predictor)
    trace_input, check_input = sample_images(predictor.input_shape)
    reference = predictor.logits(check_input)
    data = _produce(fmt, module, trace_input, predictor)
    try:
        got = RUNNERS[fmt](data, check_input)
    except Exception as exc:  # noqa: BLE001 - whatever the runtime refuses, the file is not kept
        raise RunFailed(f"the exported {fmt} file does not run ({first_line(exc, 200)}): nothing was written") from None
    difference = float((got.float() - reference).abs().max()) if got.shape == reference.shape else float("inf")
    if not difference <= TOLERANCE:  # NaN too
        raise RunFailed(f"{difference_line(difference, TOLERANCE)} exceeds the tolerance: {out} was not written "
                        "(the exported model computes something else than deepdive's)")
    write_pair(out, data, side, describe(predictor, fmt, out, difference))
    return {"file": str(out), "side_file": str(side), "format": fmt, "bytes": len(data),
            "max_abs_difference": difference, "tolerance": TOLERANCE, "checked_images": CHECK_BATCH}


def check_destinations(run: Path, out: Path, side: Path) -> None:
    """Both files export will write, checked before any work: neither may be a folder, nor one of the run
    folder's own files (its checkpoint state.pt has a torchscript suffix), nor any other file already in
    the run folder - only export's own files there (model.onnx, model.ts, model.pt2 and their .json) are
    replaced. Paths are compared resolved, so a link or ``..`` does not slip past."""
    from deepdive.storage.runs import EXPORTS, RUN_FILES

    replaceable = {*EXPORTS, *(f"{name}.json" for name in EXPORTS)}
    folder = run.resolve()
    for path in (out, side):
        if path.is_dir():
            raise UserError(f"--out {out}: {path} is a folder, and export writes {out} and {side}: "
                            "remove the folder or choose another --out")
        target = path.resolve()
        if folder not in target.parents:
            continue
        own = target.parent == folder and target.name in replaceable
        if not own and (target.exists() or (target.parent == folder and target.name in RUN_FILES)):
            raise UserError(f"--out {out} would overwrite {path}, a file of the run folder {run}: give a new file "
                            f"name (inside the run only {', '.join(EXPORTS)} are export's), or a path outside it")


def write_pair(out: Path, data: bytes, side: Path, description: dict) -> None:
    """``data`` to ``out`` and ``description`` to ``side``, both or neither: the side file is written while
    ``out``'s bytes wait in their temp file, so a failed side write leaves ``out`` as it was (its temp file
    removed), and a failed move of ``out`` removes the side file just written."""
    from deepdive.storage.atomic import write_atomic, write_json_atomic

    side_written = False

    def write(tmp: str) -> None:
        nonlocal side_written
        with open(tmp, "wb") as f:
            f.write(data)
        write_json_atomic(side, description)
        side_written = True

    try:
        write_atomic(out, write)
    except BaseException:
        if side_written:
            side.unlink(missing_ok=True)
        raise


def require_onnx() -> None:
    """The onnx extra, or one line naming its install command."""
    import importlib.util

    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"ONNX export needs {', '.join(missing)}, not installed: {ONNX_INSTALL}")


def export_module(predictor):
    """The run's inference as one ``torch.nn.Module``: uint8 (N, C, H, W) -> logits averaged over its views."""
    import copy

    import torch

    from deepdive.data.pipeline import normalize
    from deepdive.training.evaluation import tta_logits

    class Preprocessed(torch.nn.Module):
        def __init__(self, model, mean, std, tta: str):
            super().__init__()
            self.model, self.tta = model, tta
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

        def forward(self, images):
            return tta_logits(self.model, normalize(images, self.mean, self.std), self.tta).float()

    model = copy.deepcopy(predictor.model).cpu().float().to(memory_format=torch.contiguous_format).eval()
    return Preprocessed(model, predictor.mean, predictor.std, predictor.tta).eval()


def sample_images(shape):
    """Seeded random uint8 batches: one to trace (``TRACE_BATCH``), one to check (``CHECK_BATCH``)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    return tuple(torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=gen)
                 for n in (TRACE_BATCH, CHECK_BATCH))


def _produce(fmt: str, module, trace_input, predictor) -> bytes:
    import warnings

    try:
        with warnings.catch_warnings():  # torch's deprecation and tracer notes: the check below is the verdict
            warnings.simplefilter("ignore")
            return EXPORTERS[fmt](module, trace_input)
    except Exception as exc:  # noqa: BLE001 - an operator the format lacks, ...
        raise RunFailed(f"exporting {predictor.info['model']} to {fmt} failed ({first_line(exc, 200)}): "
                        "try another --format") from None


def _batch_dim():
    import torch

    return ({0: torch.export.Dim("batch", min=1)},)


def _torchscript(module, x) -> bytes:
    import torch

    with torch.no_grad():
        traced = torch.jit.trace(module, x, check_trace=False)
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer)
    return buffer.getvalue()


def _exported_program(module, x) -> bytes:
    import torch

    program = torch.export.export(module, (x,), dynamic_shapes=_batch_dim())
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def _onnx(module, x) -> bytes:
    import torch

    program = torch.onnx.export(module, (x,), dynamo=True, verbose=False, input_names=[INPUT_NAME],
                                output_names=[OUTPUT_NAME], dynamic_shapes=_batch_dim())
    buffer = io.BytesIO()
    program.save(buffer)
    return buffer.getvalue()


def _run_torchscript(data: bytes, x):
    import warnings

    import torch

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        return torch.jit.load(io.BytesIO(data), map_location="cpu")(x)


def _run_exported_program(data: bytes, x):
    import torch

    with torch.no_grad():
        return torch.export.load(io.BytesIO(data)).module()(x)


def _run_onnx(data: bytes, x):
    import onnxruntime
    import torch

    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0])


EXPORTERS = {"onnx": _onnx, "torchscript": _torchscript, "exported-program": _exported_program}
RUNNERS = {"onnx": _run_onnx, "torchscript": _run_torchscript, "exported-program": _run_exported_program}
LOADING = {"onnx": "onnxruntime.InferenceSession(FILE).run(['logits'], {'images': uint8_nchw})[0]",
           "torchscript": "torch.jit.load(FILE)(uint8_nchw)",
           "exported-program": "torch.export.load(FILE).module()(uint8_nchw)"}


def describe(predictor, fmt: str, out: Path, difference: float) -> dict:
    """FILE.json: what a program needs to feed the exported model and read its answer."""
    c, h, w = predictor.input_shape
    views = {"none": "one view", "flip": "the image and its mirror",
             "flip-shift": "the image, its mirror, both shifted one pixel right and down (reflect-padded)"}
    return {
        "format": fmt, "file": out.name, "run": str(predictor.path), "model": predictor.info["model"],
        "load": LOADING[fmt],
        "input": {"name": INPUT_NAME, "dtype": "uint8", "layout": "NCHW", "shape": ["batch", c, h, w],
                  "pixels": f"{'RGB' if c == 3 else 'greyscale'} 0..255, already {h}x{w}: fit image files as "
                            f"deepdive does (resize mode {predictor.resize_mode!r}, bilinear) before"},
        "preprocessing": "built in: x = (pixels / 255 - mean) / std per channel",
        "mean": list(predictor.mean), "std": list(predictor.std),
        "tta": predictor.tta, "tta_views": f"built in: {views[predictor.tta]}; the output is the mean of their logits",
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch", len(predictor.classes)],
                   "values": "logits: softmax over axis 1 gives the probabilities deepdive.load(run) returns"},
        "classes": list(predictor.classes),
        "check": {"max_abs_difference": difference, "tolerance": TOLERANCE, "images": CHECK_BATCH,
                  "against": "deepdive.load(run).logits in float32 on seeded random images"},
    }


