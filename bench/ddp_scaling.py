"""Data-parallel scaling: images/s of `deepdive train` in 1, 2, ... processes, and what communication costs.

    python bench/ddp_scaling.py                       # CPU: 1 and 2 processes; GPUs: 1..N when CUDA is there
    python bench/ddp_scaling.py --models simplenet --images 512 --procs 1,2     # a small run (under a minute)

For each model, on synthetic 3x32x32 images (10 classes):

- **images/s** of real `deepdive train` runs (the training clock in summary.json, rank 0's) with W
  processes, W = 1 through `deepdive train`, W > 1 through `--nproc W`: weak scaling, the same batch
  per process (``--batch`` each, -b = W·batch), ``--threads`` each (CPU; default cores / largest W);
- **scaling efficiency** = images/s(W) / (W · images/s(1));
- **communication per step**, measured under torchrun with W processes: an all-reduce of a float32
  buffer the size of the model's trainable gradients (what DDP reduces each step, here unoverlapped),
  and the small all-reduce deepdive adds per step (loss, signals, clock);
- **bytes all-reduced per step** = 4 · trainable parameters; a ring all-reduce sends and receives
  2(W−1)/W of that per process;
- **the bandwidth below which communication dominates**: the link speed at which sending those bytes
  takes as long as one step's computation (t = batch / images/s(1)), B* = 2(W−1)/W · bytes / t, for
  this W and for W → ∞ (2 · bytes / t). A cluster link slower than B* makes the step communication-bound
  (DDP overlaps the all-reduce with the backward pass, so the real threshold sits up to 2x lower).

Prints a table per model and, last, one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (3, 32, 32)
OPTIONS = {"fastnet": {"widths": [64, 128, 256]}}


def trainable_parameters(model: str) -> int:
    import torch

    from deepdive.models.registry import build_model

    with torch.device("meta"):
        net = build_model(model, torch.nn, torch.nn.functional, SHAPE, 10, **OPTIONS.get(model, {}))
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def train_rate(model: str, procs: int, args, folder: Path) -> float:
    """images/s of one `deepdive train` run with ``procs`` processes (rank 0's training clock)."""
    config = {"model": model, "dataset": "synthetic", "epochs": 1, "batch_size": args.batch * procs,
              "synthetic": {"shape": list(SHAPE), "classes": 10, "train": args.images * procs, "test": 64},
              "optimizer": "sgd", "lr": 0.01, "seed": 0, "figures": False, "eval_each_epoch": False,
              "device": args.device, **({"threads": args.threads} if args.device == "cpu" else {}),
              **OPTIONS.get(model, {})}
    path = folder / f"{model}-{procs}.json"
    path.write_text(json.dumps(config))
    command = [sys.executable, "-m", "deepdive", "-q", "train", "--config", str(path), "--out",
               str(folder / f"run-{model}-{procs}"), "--json", *(["--nproc", str(procs)] if procs > 1 else [])]
    done = subprocess.run(command, capture_output=True, text=True, cwd=folder)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    return json.loads(done.stdout)["images_per_second"]


def comm_worker(models: list[str], device: str, repeats: int, out: str) -> None:
    """Under torchrun: time all-reduces of each model's gradient size and of deepdive's per-step figures."""
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    cuda = device == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(seconds=60))
    where = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")

    def timed(tensor) -> float:
        for _ in range(3):
            dist.all_reduce(tensor)
        times = []
        for _ in range(repeats):
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            dist.all_reduce(tensor)
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    result = {"small_allreduce_s": timed(torch.zeros(5, dtype=torch.float64, device=where))}
    for model in models:
        result[model] = timed(torch.zeros(trainable_parameters(model), dtype=torch.float32, device=where))
    if dist.get_rank() == 0:
        Path(out).write_text(json.dumps(result))
    dist.destroy_process_group()


def comm_times(models: list[str], procs: int, args, folder: Path) -> dict:
    out = folder / f"comm-{procs}.json"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs),
               __file__, "--comm-worker", "--models", ",".join(models), "--device", args.device,
               "--repeats", str(args.repeats), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads or 1)}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"the all-reduce timing failed:\n{done.stderr[-2000:]}")
    return json.loads(out.read_text())


def gbit(bytes_per_second: float) -> str:
    return f"{8 * bytes_per_second / 1e9:.2f} Gbit/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="simplenet,article-cnn,fastnet")
    parser.add_argument("--procs", default=None, help="process counts, e.g. 1,2 (default: 1,2 on CPU; 1..GPUs)")
    parser.add_argument("--images", type=int, default=4096, help="training images per process")
    parser.add_argument("--batch", type=int, default=64, help="batch per process")
    parser.add_argument("--device", default=None, choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per process")
    parser.add_argument("--repeats", type=int, default=30, help="timed all-reduces per size")
    parser.add_argument("--comm-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    models = args.models.split(",")
    if args.comm_worker:
        comm_worker(models, args.device, args.repeats, args.out)
        return
    import torch

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    gpus = torch.cuda.device_count() if args.device == "cuda" else 0
    procs = [int(p) for p in args.procs.split(",")] if args.procs else (
        list(range(1, gpus + 1)) if gpus else [1, 2])
    if args.device == "cpu" and args.threads is None:
        args.threads = max(1, (os.cpu_count() or 1) // max(procs))
    where = f"{gpus} GPU(s), NCCL" if args.device == "cuda" else f"CPU, gloo, {args.threads} thread(s) per process"
    print(f"weak scaling on {where}: {args.batch} images per process per step, {args.images} per process "
          f"per run (synthetic {SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]})")
    report: dict = {"device": args.device, "threads": args.threads, "batch_per_process": args.batch, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        comm = {w: comm_times(models, w, args, folder) for w in procs if w > 1}
        for model in models:
            params = trainable_parameters(model)
            size = 4 * params
            rates = {w: train_rate(model, w, args, folder) for w in procs}
            step = args.batch / rates[1] if 1 in rates else None  # one process's computation per step
            print(f"\n{model}: {params:,} trainable parameters, {size / 1e6:.2f} MB all-reduced per step"
                  + (f", {1e3 * step:.2f} ms of computation per step in one process" if step else ""))
            print(f"  {'procs':>5} {'img/s':>9} {'efficiency':>10} {'grad all-reduce':>16} {'small all-reduce':>17} "
                  f"{'comm dominates below':>21}")
            rows = []
            for w in procs:
                efficiency = rates[w] / (w * rates[1]) if 1 in rates else None
                grad = comm[w][model] if w > 1 else None
                small = comm[w]["small_allreduce_s"] if w > 1 else None
                threshold = 2 * (w - 1) / w * size / step if (w > 1 and step) else None
                rows.append({"procs": w, "images_per_second": rates[w], "efficiency": efficiency,
                             "grad_allreduce_ms": grad and 1e3 * grad, "small_allreduce_us": small and 1e6 * small,
                             "bytes_per_step": size, "dominates_below_bytes_per_s": threshold})
                print(f"  {w:>5} {rates[w]:>9.0f} {'' if efficiency is None else f'{100 * efficiency:.0f}%':>10} "
                      f"{'' if grad is None else f'{1e3 * grad:.2f} ms':>16} "
                      f"{'' if small is None else f'{1e6 * small:.0f} us':>17} "
                      f"{'' if threshold is None else gbit(threshold):>21}")
            if step:
                print(f"  many processes (ring all-reduce, 2x the bytes): communication dominates below "
                      f"{gbit(2 * size / step)}")
            report["models"][model] = {"trainable_parameters": params, "bytes_per_step": size,
                                       "compute_seconds_per_step": step, "rows": rows,
                                       "dominates_below_many_procs_bytes_per_s": step and 2 * size / step}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
