"""deepdive beside airbench94 on this CPU and this copy of CIFAR-10: same data, same machine, one run of this script.

    python bench/vs_airbench_cpu.py --data-dir data                      # 3 seeds each (about an hour and a half)
    python bench/vs_airbench_cpu.py --data-dir data --seeds 0 --only airbench --json-out peer.json

airbench94 is the PyPI package ``airbench`` (``pip install airbench``), run as published - its network,
hyperparameters, loader and TTA - through its own ``train94``. It is written for one CUDA GPU, so this
harness substitutes, and only for the duration of its runs: the device (its loader reads the data onto the
CPU, its network stays on the CPU in fp32 with bf16 autocast where the CPU computes bf16 natively, as
deepdive's recipes do), and its CUDA-event timers (a clock with the same two methods). Its data file is
built from the same CIFAR-10 copy deepdive reads (``--data-dir``). Its own clock counts the whitening
initialisation and the training steps, not its per-epoch evaluations; the final TTA evaluation is
reported apart.

deepdive runs ``deepdive train`` in a fresh process per seed: the GPU preset (batch 1024, 64/256/256, the
same shape and batch as airbench94) for its accuracy after the same epochs, and the CPU recipe
(``--recipe fast``) with a time budget of 0.8x airbench94's measured training time (the target: the
schedule follows the clock) for its accuracy at that budget. Training seconds are compared (evaluation
excluded on both sides); the final evaluations per test view apart. Each deepdive run is evaluated once,
after its last epoch (``eval_each_epoch`` off), so no evaluation wall time is spent in between.

Prints a table, then one JSON line (also written to ``--json-out``; ``deepdive ladder --peer`` reads it).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

AIRBENCH_TTA_VIEWS = 6  # tta_level 2: the image and its mirror, each also translated by ±1 pixel
DEEPDIVE_TTA_VIEWS = 4


def spread(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values}


def write_airbench_data(data_dir: str, folder: Path, limit_train: int | None, limit_test: int | None) -> None:
    """airbench's data files (uint8 NHWC images, labels, class names) from deepdive's reader of the same copy."""
    import torch

    from deepdive.data.datasets import DataOptions, prepare_data

    bundle = prepare_data("cifar10", DataOptions(data_dir=data_dir, download=False), limit_train=limit_train,
                          limit_test=limit_test)
    folder.mkdir(parents=True, exist_ok=True)
    for name, split in (("train.pt", bundle.train), ("test.pt", bundle.test)):
        images = split.images.permute(0, 2, 3, 1).contiguous()
        torch.save({"images": images, "labels": split.labels.long(), "classes": list(bundle.classes)},
                   folder / name)


class CpuEvent:
    """torch.cuda.Event's two methods on the CPU's clock: record(), elapsed_time(other) in milliseconds."""

    def __init__(self, enable_timing: bool = True):
        self.at = None

    def record(self, stream=None) -> None:
        self.at = time.perf_counter()

    def elapsed_time(self, end: "CpuEvent") -> float:
        return 1000.0 * (end.at - self.at)


@contextlib.contextmanager
def airbench_rows():
    """airbench's logging captured while it runs: each epoch's row and the final TTA row, as dicts."""
    from airbench import utils

    rows: list[dict] = []
    original = utils.print_training_details

    def record(variables, is_final_entry):
        rows.append({k: variables.get(k) for k in ("epoch", "val_acc", "tta_val_acc", "total_time_seconds")})
        original(variables, is_final_entry)

    utils.print_training_details = record
    try:
        yield rows
    finally:
        utils.print_training_details = original


@contextlib.contextmanager
def airbench_on_cpu(bf16: bool):
    """airbench's CUDA assumptions replaced for the duration: loader on the CPU in fp32, network not moved to
    CUDA nor halved, CPU timers. Yields the loader class to build its training loader with."""
    import torch
    from airbench import lib_airbench94, utils

    original = {"loader": utils.CifarLoader, "event": torch.cuda.Event, "sync": torch.cuda.synchronize,
                "half": torch.nn.Module.half, "cuda": torch.nn.Module.cuda}

    class CpuLoader(original["loader"]):
        def __init__(self, path, *args, gpu="cpu", **kwargs):
            super().__init__(path, *args, gpu="cpu", **kwargs)
            self.images = self.images.float()  # (halves on a CPU are slow; autocast does the bf16)

    utils.CifarLoader = lib_airbench94.CifarLoader = CpuLoader
    torch.cuda.Event, torch.cuda.synchronize = CpuEvent, lambda *a, **k: None
    torch.nn.Module.half = torch.nn.Module.cuda = lambda self, *a, **k: self
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            yield CpuLoader
    finally:
        utils.CifarLoader = lib_airbench94.CifarLoader = original["loader"]
        torch.cuda.Event, torch.cuda.synchronize = original["event"], original["sync"]
        torch.nn.Module.half, torch.nn.Module.cuda = original["half"], original["cuda"]


@contextlib.contextmanager
def airbench_as_published():
    """On a GPU airbench runs unchanged: its own loader (on cuda:0), fp16 network, CUDA-event timers."""
    from airbench import utils

    yield utils.CifarLoader


def run_airbench(seed: int, epochs: float, work: Path, bf16: bool, device: str = "cpu", warm_up: bool = False) -> dict:
    """One airbench94 run through its own train94, in ``work`` (which holds cifar10/train.pt, test.pt); with
    ``warm_up``, airbench's own warm-up (one step, untimed by it) first, timed here apart."""
    import torch
    from airbench import lib_airbench94

    os.chdir(work)
    torch.manual_seed(seed)
    with (airbench_on_cpu(bf16) if device == "cpu" else airbench_as_published()) as loader, airbench_rows() as rows:
        train_loader = loader("cifar10", train=True, batch_size=lib_airbench94.hyp["opt"]["batch_size"],
                              aug=lib_airbench94.hyp["aug"], altflip=True)
        warm_seconds = None
        if warm_up:
            start = time.perf_counter()
            lib_airbench94.train94(train_loader, epochs=epochs, run="warmup")
            if device == "cuda":
                torch.cuda.synchronize()
            warm_seconds = time.perf_counter() - start
            rows.clear()
        lib_airbench94.train94(train_loader, epochs=epochs)
    final = rows[-1]
    trained = rows[-2]["total_time_seconds"] if len(rows) > 1 else None
    return {"seed": seed, "accuracy": rows[-2]["val_acc"] if len(rows) > 1 else None,
            "tta_accuracy": final["tta_val_acc"], "train_seconds": trained,
            "eval_seconds": final["total_time_seconds"] - trained if trained is not None else None,
            "warm_up_seconds": warm_seconds}


def run_deepdive(argv: list[str], seed: int, out: Path, threads: int) -> dict:
    """``deepdive train ... --json`` in its own process, evaluated after its last epoch only; its summary."""
    settings = out.parent / "after-the-last-epoch.json"
    settings.write_text(json.dumps({"eval_each_epoch": False}))
    command = [sys.executable, "-m", "deepdive", "-q", "train", "--config", str(settings), *argv, "--seed", str(seed),
               "--threads", str(threads), "--no-figures", "--out", str(out), "--overwrite", "--json"]
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src")}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"deepdive failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default="data")
    p.add_argument("--seeds", default="0-2", help="e.g. 0-2 (default) or 0")
    p.add_argument("--epochs", type=float, default=10.0, help="deepdive's GPU preset; airbench94 trains 9.9")
    p.add_argument("--airbench-epochs", type=float, default=9.9)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit-train", type=int, help="a class-balanced subset (tiny checks only)")
    p.add_argument("--limit-test", type=int)
    p.add_argument("--only", choices=["airbench", "deepdive"], help="run one side only")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="cuda: airbench94 as published on the GPU, after its warm-up (with --only airbench; "
                        "bench/time_to_accuracy.py --gpu times deepdive's side there)")
    p.add_argument("--budget", type=float, help="the CPU recipe's --time-budget in seconds (default: 0.8x "
                   "airbench94's mean training time in this run, the target; 346 s with --only deepdive)")
    p.add_argument("--no-bf16", dest="bf16", action="store_false", help="fp32 on both sides")
    p.add_argument("--json-out", metavar="FILE")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    import torch

    from deepdive.config.machine import cpu_has_native_bf16
    from deepdive.teach.article_seeds import parse_seeds

    args = parse_args(argv)
    if args.device == "cuda" and args.only != "airbench":
        raise SystemExit("--device cuda runs airbench94's side only: add --only airbench")
    seeds = parse_seeds(args.seeds)
    torch.set_num_threads(args.threads)
    bf16 = args.bf16 and cpu_has_native_bf16()
    limits = [*(["--limit-train", str(args.limit_train)] if args.limit_train else []),
              *(["--limit-test", str(args.limit_test)] if args.limit_test else [])]
    where = (f"cpu, {args.threads} threads, {'bf16 autocast' if bf16 else 'fp32'}, torch {torch.__version__}"
             if args.device == "cpu" else f"{torch.cuda.get_device_name()}, fp16 as published, torch {torch.__version__}")
    result: dict = {"where": where, "seeds": seeds, "data_dir": str(Path(args.data_dir).resolve())}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data_dir = str(Path(args.data_dir).resolve())
        if args.only != "deepdive":
            write_airbench_data(data_dir, tmp / "cifar10", args.limit_train, args.limit_test)
            here = os.getcwd()
            try:
                runs = [run_airbench(s, args.airbench_epochs, tmp, bf16, args.device, warm_up=i == 0 and
                                     args.device == "cuda") for i, s in enumerate(seeds)]
            finally:
                os.chdir(here)
            result["airbench94"] = summarize(runs, AIRBENCH_TTA_VIEWS, where, seeds)
        if args.only != "airbench":
            common = ["--recipe", "fast", "--dataset", "cifar10", "--data-dir", data_dir, *limits,
                      *([] if bf16 else ["--no-amp"])]
            preset = ["-b", "1024", "--lr", "0.4", "--widths", "64,256,256", "--epochs", f"{args.epochs:g}"]
            gpu = [run_deepdive([*common, *preset], s, tmp / f"gpu-{s}", args.threads) for s in seeds]
            result["deepdive_gpu_preset"] = summarize_deepdive(gpu, where, seeds)
            peer_seconds = (result.get("airbench94", {}).get("train_seconds") or {}).get("mean")
            budget = args.budget or (0.8 * peer_seconds if peer_seconds else 346.0)
            cpu = [run_deepdive([*common, "--time-budget", f"{budget:.1f}"], s, tmp / f"cpu-{s}", args.threads)
                   for s in seeds]
            result["deepdive_cpu_recipe"] = {**summarize_deepdive(cpu, where, seeds), "time_budget": budget}
    print_table(result)
    line = json.dumps(result)
    if args.json_out:
        Path(args.json_out).write_text(line + "\n")
    print(line)
    return result


def summarize(runs: list[dict], views: int, where: str, seeds: list[int]) -> dict:
    out = {"seeds": seeds, "where": where, "tta_views": views, "runs": runs,
           "warm_up_seconds": runs[0].get("warm_up_seconds") if runs else None}
    for key in ("accuracy", "tta_accuracy", "train_seconds", "eval_seconds"):
        values = [r[key] for r in runs if r[key] is not None]
        out[key] = spread(values) if values else None
    if out["eval_seconds"]:
        out["eval_seconds_per_view"] = out["eval_seconds"]["mean"] / views
    return out


def summarize_deepdive(summaries: list[dict], where: str, seeds: list[int]) -> dict:
    runs = [{"seed": s, "tta_accuracy": r["test_accuracy"], "accuracy": None, "train_seconds": r["train_seconds"],
             "eval_seconds": r.get("eval_seconds"), "epochs": r.get("epochs")} for s, r in zip(seeds, summaries)]
    return summarize(runs, DEEPDIVE_TTA_VIEWS, where, seeds)


def _cell(s: dict | None, scale: float = 1.0, fmt: str = "{:.2f}") -> str:
    return "-" if not s else f"{fmt.format(scale * s['mean'])} ± {fmt.format(scale * s['std'])}"


def print_table(result: dict) -> None:
    print(f"{'':22} {'accuracy (TTA) %':>18} {'train s':>16} {'eval s/view':>12}  ({result['where']})")
    for name in ("airbench94", "deepdive_gpu_preset", "deepdive_cpu_recipe"):
        side = result.get(name)
        if side:
            per_view = side.get("eval_seconds_per_view")
            print(f"{name:22} {_cell(side['tta_accuracy'], 100):>18} {_cell(side['train_seconds'], fmt='{:.1f}'):>16} "
                  f"{'-' if per_view is None else f'{per_view:.3f}':>12}")
    peer, cpu, gpu = (result.get(k) for k in ("airbench94", "deepdive_cpu_recipe", "deepdive_gpu_preset"))
    if peer and gpu:
        gap = gpu["tta_accuracy"]["mean"] - peer["tta_accuracy"]["mean"]
        result["gpu_preset_minus_airbench94"] = gap
        print(f"the GPU preset after the same epochs: {100 * gap:+.2f} points from airbench94 (target >= 0)")
    if peer and cpu and peer.get("train_seconds"):
        ratio = cpu["time_budget"] / peer["train_seconds"]["mean"]
        gap = cpu["tta_accuracy"]["mean"] - peer["tta_accuracy"]["mean"]
        result["cpu_recipe_time_ratio"], result["cpu_recipe_minus_airbench94"] = ratio, gap
        print(f"the CPU recipe in {ratio:.2f}x airbench94's training time: {100 * gap:+.2f} points from its "
              "accuracy (target: >= 0 at <= 0.8x)")


if __name__ == "__main__":
    main()
