"""fp32 vs bf16 autocast training throughput on this CPU, side by side in one run.

    python bench/cpu_precision.py --data-dir DIR [--recipe fast] [--steps 40] [--rounds 2]

The recipes train under bf16 autocast on CPUs with native bf16 (AVX512-BF16,
AMX) because of the speed-up this measures: the recipe's model, batch and
optimizer on real CIFAR-10 batches, timed with ``time_steps`` (the training
step of bench/article_epoch.py), fp32 and bf16 alternating for ``--rounds``
rounds so that a machine whose speed drifts affects both alike. Prints a table
and, last, one JSON line.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="./data")
    parser.add_argument("--recipe", default="fast")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--widths", default=None, help="override the recipe's fastnet widths, e.g. 32,64,128")
    args = parser.parse_args()

    import torch
    from article_epoch import time_steps
    from deepdive.config.resolve import resolve_config
    from deepdive.training.run_data import prepare_data
    from deepdive.config.machine import cpu_has_native_bf16
    from deepdive.training.setup import build_components, seed_everything
    from deepdive.training.threads import set_threads

    threads = set_threads(None)
    values = {"recipe": args.recipe, "dataset": "cifar10", "data_dir": args.data_dir, "download": False,
              "device": "cpu"}
    if args.widths:
        values["widths"] = [int(w) for w in args.widths.split(",")]
    base = resolve_config(values)
    values["limit_train"] = (args.steps + 20) * base.batch_size
    values["limit_test"] = 100
    bundle = prepare_data(resolve_config(values))
    seconds = {"fp32": [], "bf16": []}
    for _ in range(args.rounds):
        for precision in seconds:
            cfg = resolve_config({**values, "amp": precision == "bf16"})
            seed_everything(0)
            parts = build_components(cfg, bundle)
            seconds[precision].append(time_steps(parts.engine, parts.model, parts.optimizer, bundle.train, cfg.batch_size,
                                                 args.steps, warmup=5))
    rate = {p: base.batch_size / statistics.median(s) for p, s in seconds.items()}
    print(f"{args.recipe} recipe: fastnet {base.widths}, batch {base.batch_size}, CPU, {threads} threads, "
          f"torch {torch.__version__}, native bf16: {cpu_has_native_bf16()}")
    for precision, s in seconds.items():
        print(f"  {precision}: {rate[precision]:.0f} images/s  (ms/step per round: "
              f"{', '.join(f'{1000 * t:.0f}' for t in s)})")
    print(f"  bf16 / fp32: {rate['bf16'] / rate['fp32']:.2f}x")
    print(json.dumps({"widths": base.widths, "batch_size": base.batch_size, "threads": threads,
                      "native_bf16": cpu_has_native_bf16(), "fp32_images_per_second": rate["fp32"],
                      "bf16_images_per_second": rate["bf16"], "speedup": rate["bf16"] / rate["fp32"]}))


if __name__ == "__main__":
    main()
