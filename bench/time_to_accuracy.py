"""Time to accuracy: the article's recipe vs deepdive's fast recipe, same machine, same data, one run.

    python bench/time_to_accuracy.py --data-dir DIR            # CPU
    python bench/time_to_accuracy.py --data-dir DIR --gpu      # GPU: >= 10 seeds, CUDA events

CPU: (a) the article's recipe (article-cnn, batch 16, Adam 1e-3) timed per step
over a few hundred steps and extrapolated to its 10 epochs; (b) the fast
recipe run until it reaches the target (0.612, the article's accuracy) and on
to the end of its schedule. Times count training only (evaluation excluded).
Prints both times, their ratio, the accuracies, model-FLOP utilisation, and
last one JSON line.

GPU: the fast recipe over several seeds after one untimed warm-up run (which
also absorbs torch.compile), each timed with CUDA events from the first step
to the final evaluation with TTA included; mean and spread of accuracy and time.
"""
from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

sys.path.insert(0, str(HERE.parent / "src"))
from deepdive.config.recipes import ARTICLE  # noqa: E402

ARTICLE_ACCURACY = ARTICLE["published"]["test_accuracy"]


def fast_config(args, extra: list[str], **overrides):
    """The recipe's config with the benchmark's flags, resolved the one way ``deepdive train`` resolves it."""
    from deepdive.commands.train_flags import parse_train_flags
    from deepdive.config.resolve import resolve_config

    flags = parse_train_flags(["--recipe", args.recipe, "--dataset", args.dataset, "--data-dir", args.data_dir,
                               *extra])
    return resolve_config({**flags, **overrides})


def article_seconds(args) -> tuple[float, float]:
    from article_epoch import time_steps
    from deepdive.config.resolve import resolve_config
    from deepdive.training.run_data import prepare_data
    from deepdive.training.setup import build_components

    cfg = resolve_config({"recipe": "article", "dataset": args.dataset, "data_dir": args.data_dir,
                          "download": False, "device": "cpu", "limit_train": (args.article_steps + 20) * 16})
    bundle = prepare_data(cfg)
    parts = build_components(cfg, bundle)
    per_step = time_steps(parts.engine, parts.model, parts.optimizer, bundle.train, cfg.batch_size,
                          args.article_steps)
    return per_step, per_step / cfg.batch_size * 50000 * cfg.epochs


def cpu_mode(args, extra: list[str]) -> dict:
    from flops import matmul_flops_per_second, training_flops_per_image
    from deepdive.training.setup import run_training
    from deepdive.training.threads import set_threads

    threads = set_threads(None)
    per_step, article_total = article_seconds(args)
    print(f"(a) article recipe: {per_step * 1000:.1f} ms/step of 16 -> {16 / per_step:.0f} img/s; "
          f"10 epochs projected at {article_total:.0f} s", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = fast_config(args, extra, target_accuracy=args.target, stop_at_target=False, out=f"{tmp}/fast",
                          device="cpu")
        summary = run_training(cfg)
    import torch
    precision = "bf16" if cfg.amp else "fp32"
    peak = matmul_flops_per_second(dtype=torch.bfloat16 if cfg.amp else torch.float32)
    reached = summary.get("target_reached")
    fast_seconds = summary.get("seconds_to_target")
    from deepdive.training.run_data import prepare_data
    from deepdive.training.setup import build_components
    small = fast_config(args, extra, device="cpu", limit_train=64, limit_test=10)
    flops_per_image = training_flops_per_image(build_components(small, prepare_data(small)).model, (3, 32, 32))
    achieved = flops_per_image * summary["images_per_second"]
    result = {
        "device": "cpu", "threads": threads, "article_seconds_per_step": per_step,
        "article_seconds_10_epochs": article_total, "article_accuracy_published": ARTICLE_ACCURACY,
        "target_accuracy": args.target, "fast_target_reached": bool(reached), "fast_seconds_to_target": fast_seconds,
        "ratio": article_total / fast_seconds if reached else None,
        "fast_final_accuracy": summary["test_accuracy"], "fast_train_seconds": summary["train_seconds"],
        "fast_eval_seconds": summary.get("eval_seconds"), "fast_epochs": summary["epochs"],
        "fast_config": {k: getattr(cfg, k) for k in ("recipe", "widths", "batch_size", "lr", "epochs", "ema", "tta",
                                                     "amp")},
        "training_flops_per_image": flops_per_image, "achieved_flops_per_second": achieved,
        "matmul_precision": precision, "matmul_flops_per_second": peak, "mfu": achieved / peak,
    }
    print(f"(b) fast recipe: reached {100 * args.target:.1f}% after {fast_seconds or float('nan'):.1f} s of training;"
          f" final {100 * summary['test_accuracy']:.2f}% after {summary['train_seconds']:.1f} s "
          f"({summary['epochs']} epochs)")
    print(f"article recipe, 10 epochs (projected): {article_total:.0f} s -> ratio "
          f"{result['ratio'] or float('nan'):.1f}x (target >= 40x)")
    print(f"accuracies: article {100 * ARTICLE_ACCURACY:.1f}% (published), fast {100 * summary['test_accuracy']:.2f}%")
    print(f"MFU: {achieved / 1e9:.1f} GFLOP/s achieved in training / {peak / 1e9:.1f} GFLOP/s {precision} matmul "
          f"= {100 * achieved / peak:.1f}%")
    return result


def timed(work, device: str):
    """(work(), seconds): CUDA events around it on a GPU (synchronized before and after), the clock on a CPU."""
    import time

    import torch

    if device != "cuda":
        start = time.perf_counter()
        return work(), time.perf_counter() - start
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    value = work()
    end.record()
    torch.cuda.synchronize()
    return value, start.elapsed_time(end) / 1000


def gpu_mode(args, extra: list[str]) -> dict:
    import torch

    from deepdive.training.run_data import prepare_data
    from deepdive.storage.runs import RunDir
    from deepdive.training.signals import catch_stop_signals
    from deepdive.training.loop import Trainer
    from deepdive.training.setup import build_components

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--gpu needs a CUDA GPU (--device cpu: the same runs on the CPU, for a tiny check)")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        base = fast_config(args, extra, device=args.device, eval_each_epoch=False, save_every=10 ** 6)
        bundle = prepare_data(base)
        device = torch.device(args.device)
        bundle.train, bundle.test = bundle.train.to(device), bundle.test.to(device)
        for i, seed in enumerate(range(args.seeds + 1)):  # run 0 is the untimed warm-up
            values = base.to_dict()
            values.update(seed=seed, out=f"{tmp}/run{i}")
            from deepdive.config.train_config import TrainConfig
            cfg = TrainConfig.from_dict(values)
            parts = build_components(cfg, bundle)
            run = RunDir.create(cfg.out)
            with catch_stop_signals() as stop:
                trainer = Trainer(cfg, run, bundle, parts.engine, parts.model, parts.optimizer, stop)
                summary, seconds = timed(lambda: trainer.fit({}), args.device)
            if i > 0:
                results.append((summary["test_accuracy"], seconds))
            else:
                warm_up = seconds  # cuDNN's autotuning and any torch.compile land here: reported apart
            print(f"{'warm-up' if i == 0 else f'seed {seed}'}: {100 * summary['test_accuracy']:.2f}% in "
                  f"{seconds:.2f} s", file=sys.stderr)
    accs, times = [r[0] for r in results], [r[1] for r in results]
    result = {"device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu", "runs": len(results),
              "warm_up_seconds": warm_up,
              "accuracy_mean": statistics.mean(accs), "accuracy_std": statistics.pstdev(accs),
              "seconds_mean": statistics.mean(times), "seconds_std": statistics.pstdev(times),
              "fast_config": {k: getattr(base, k) for k in ("widths", "batch_size", "lr", "epochs", "amp", "compile")}}
    print(f"{result['runs']} runs: accuracy {100 * result['accuracy_mean']:.2f}% ± {100 * result['accuracy_std']:.2f}"
          f", time {result['seconds_mean']:.2f} s ± {result['seconds_std']:.2f}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="./data")
    parser.add_argument("--dataset", default="cifar10", help="cifar10, or imagefolder on the JPEG tree")
    parser.add_argument("--recipe", default=None, help="default: sprint on the CPU, fast on the GPU")
    parser.add_argument("--target", type=float, default=ARTICLE_ACCURACY)
    parser.add_argument("--article-steps", type=int, default=300)
    parser.add_argument("--gpu", action="store_true")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="--gpu's device (cpu: a tiny check)")
    parser.add_argument("--fast-args", default="", help="extra deepdive train flags for the fast run, quoted")
    args = parser.parse_args()
    import logging
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    extra = shlex.split(args.fast_args)
    args.recipe = args.recipe or ("fast" if args.gpu else "sprint")
    result = gpu_mode(args, extra) if args.gpu else cpu_mode(args, extra)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
