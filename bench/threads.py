"""CPU threads: training throughput at 1 and 2 threads, alone and beside a CPU-bound process.

    python bench/threads.py [--seconds 4]

For simplenet (28x28 grey, batch 64), article-cnn (32x32 RGB, batch 16) and fastnet
(the fast recipe's CPU preset: widths 64/128/256, batch 128, bf16 where native),
each configuration is timed in a fresh process (torch's thread pool is fixed at
its first parallel op): ``T`` torch threads, with OpenMP's default (spinning)
wait policy or ``OMP_WAIT_POLICY=PASSIVE``, once on an idle machine and once
beside a busy-looping process that holds one core. Prints images/s side by side
and, last, one JSON line. The default thread rule in ``deepdive.training.threads``
comes from these figures (README, CPU threads).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
MODELS = {"simplenet": ((1, 28, 28), 64, {}), "article-cnn": ((3, 32, 32), 16, {}),
          "fastnet": ((3, 32, 32), 128, {"widths": (64, 128, 256)})}


def measure(model: str, threads: int, seconds: float) -> float:
    """Images per second of ``model``'s training steps with ``threads`` torch threads (this process)."""
    import torch
    import torch.nn.functional as F

    from deepdive.config.machine import cpu_has_native_bf16
    from deepdive.models.registry import build_model

    torch.set_num_threads(threads)
    shape, batch, options = MODELS[model]
    torch.manual_seed(0)
    net = build_model(model, torch.nn, F, shape, 10, **options)
    amp = model == "fastnet" and cpu_has_native_bf16()
    if model == "fastnet":
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(batch, *shape), torch.randint(0, 10, (batch,))

    def step():
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(net(x).float(), y)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        steps += 1
    return steps * batch / (time.perf_counter() - start)


def child(model: str, threads: int, passive: bool, seconds: float) -> float:
    env = dict(os.environ, PYTHONPATH=SRC)
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    code = f"import sys; sys.path.insert(0, {SRC!r}); from threads import measure; " \
           f"print(measure({model!r}, {threads}, {seconds}))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          cwd=str(Path(__file__).parent), check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="timed seconds per configuration")
    args = parser.parse_args()
    configs = [(1, False), (2, False), (2, True)]
    results = {}
    for busy in (False, True):
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            for model in MODELS:
                for threads, passive in configs:
                    key = f"{model} threads={threads}{' passive' if passive else ''} {'busy' if busy else 'idle'}"
                    results[key] = child(model, threads, passive, args.seconds)
                    print(f"{key:<42} {results[key]:10.0f} img/s", file=sys.stderr)
        finally:
            if hog:
                hog.kill()
    print(f"\n{'model':<12} {'machine':<6} {'1 thread':>10} {'2 threads':>10} {'2 passive':>10}   img/s")
    for busy in ("idle", "busy"):
        for model in MODELS:
            row = [results[f"{model} threads={t}{' passive' if p else ''} {busy}"] for t, p in configs]
            print(f"{model:<12} {busy:<6} " + " ".join(f"{v:10.0f}" for v in row))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
