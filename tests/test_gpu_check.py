"""bench/gpu_check.sh at tiny sizes on the CPU: every step runs and reports, as it must on a lent GPU."""
import json
import os
import subprocess
import sys
from pathlib import Path

from cifar_files import write_cifar

ROOT = Path(__file__).resolve().parents[1]


def run_check(tmp_path, data):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "GPU_CHECK_TINY": "1", "GPU_CHECK_DATA": str(data), "GPU_CHECK_OUT": str(tmp_path / "out")}
    return subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh")], capture_output=True, text=True, env=env,
                          timeout=400)


def test_every_step_of_the_gpu_check_runs_at_tiny_sizes(tmp_path):
    write_cifar(tmp_path / "data", per_batch=220)  # 1,100 training images: one of airbench's 1,024-batches
    done = run_check(tmp_path, tmp_path / "data")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "stopped with exit" not in done.stdout, done.stdout[-3000:]
    out = tmp_path / "out"
    peer = json.loads((out / "airbench94.json").read_text())["airbench94"]
    assert peer["tta_views"] == 6 and len(peer["runs"]) == 1
    for name in ("gpu94", "gpu95"):
        result = json.loads((out / f"{name}.out").read_text().splitlines()[-1])
        assert result["runs"] == 1 and 0 <= result["accuracy_mean"] <= 1 and result["warm_up_seconds"] > 0
    ladder = json.loads((out / "ladder-full" / "ladder.json").read_text())
    assert [r["index"] for r in ladder["rungs"]] == [9, 10] and ladder["scale"] == "tiny"
    assert "ladder: 10    test-time augmentation" in done.stdout
    assert done.stdout.rstrip().endswith(f"gpu_check: done; files in {out}")


def test_the_gpu_check_without_its_prepared_data_says_what_to_run(tmp_path):
    (tmp_path / "empty").mkdir()
    done = run_check(tmp_path, tmp_path / "empty")
    assert done.returncode == 2 and "run bench/prepare_gpu_check.sh first" in done.stderr
