"""Peak resident memory of deepdive refusing tiny hostile files, beside a tiny synthetic run (issue 10).

    python bench/hostile_memory.py

Each command runs in a child process that reports its own peak RSS (``ru_maxrss``). The acceptance
bound is the baseline + 200 MB; tests/test_hostile.py asserts the same bound.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from hostile_files import (blank_images_pickle, cifar_folder, gzip_idx_bomb, nine_byte_pickle,  # noqa: E402
                           object_dtype_pickle)
from test_hostile import run_measured  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        code, _, baseline = run_measured(["train", "--model", "simplenet", "--dataset", "synthetic", "--epochs", "1",
                                          "--out", tmp / "baseline"])
        print(f"{'case':<44} {'bytes':>10} {'exit':>4} {'peak RSS':>9}  one line on stderr")
        print(f"{'tiny synthetic run (baseline)':<44} {'-':>10} {code:>4} {baseline:>6.0f} MB")
        for name, batch in (("9-byte pickle (BINBYTES of 2 GB)", nine_byte_pickle()),
                            ("object-dtype pickle (10^9 entries)", object_dtype_pickle()),
                            ("'150,000 images' pickle with 6 bytes", blank_images_pickle())):
            data = cifar_folder(tmp / str(len(batch)), batch)
            code, err, rss = run_measured(["train", "--dataset", "cifar10", "--data-dir", data, "--no-download",
                                           "--out", tmp / "run"])
            print(f"{name:<44} {len(batch):>10} {code:>4} {rss:>6.0f} MB  {err.strip()[:90]}")
        bomb = gzip_idx_bomb(tmp / "bomb")
        size = (bomb / "train-images-idx3-ubyte.gz").stat().st_size
        code, err, rss = run_measured(["train", "--dataset", "mnist", "--data-dir", bomb, "--out", tmp / "run"])
        print(f"{'gzip idx inflating to 1 GB':<44} {size:>10} {code:>4} {rss:>6.0f} MB  {err.strip()[:90]}")


if __name__ == "__main__":
    main()
