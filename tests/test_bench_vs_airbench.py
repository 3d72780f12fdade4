"""bench/vs_airbench_cpu.py at tiny sizes: airbench94 (the PyPI package) really runs on the CPU through its own
train94, on data files built from the copy deepdive reads, and CUDA's stand-ins are put back afterwards."""
import json
import subprocess
import sys
from pathlib import Path

import torch

from cifar_files import write_cifar

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import vs_airbench_cpu  # noqa: E402


def test_airbench_data_files_hold_the_images_deepdive_reads(tmp_path):
    from deepdive.data.datasets import DataOptions, prepare_data

    write_cifar(tmp_path, per_batch=12)
    vs_airbench_cpu.write_airbench_data(str(tmp_path), tmp_path / "cifar10", None, None)
    bundle = prepare_data("cifar10", DataOptions(data_dir=str(tmp_path), download=False))
    train = torch.load(tmp_path / "cifar10" / "train.pt")
    assert train["images"].dtype == torch.uint8 and train["images"].shape == (60, 32, 32, 3)  # NHWC, as airbench
    assert torch.equal(train["images"].permute(0, 3, 1, 2), bundle.train.images)
    assert torch.equal(train["labels"], bundle.train.labels.long()) and train["classes"] == list(bundle.classes)


def test_cpu_event_measures_like_cuda_events(monkeypatch):
    clock = iter([10.0, 12.5])
    monkeypatch.setattr(vs_airbench_cpu.time, "perf_counter", lambda: next(clock))
    start, end = vs_airbench_cpu.CpuEvent(enable_timing=True), vs_airbench_cpu.CpuEvent()
    start.record()
    end.record()
    assert start.elapsed_time(end) == 2500.0


def test_the_stand_ins_are_put_back():
    event, half = torch.cuda.Event, torch.nn.Module.half
    with vs_airbench_cpu.airbench_on_cpu(bf16=False):
        assert torch.cuda.Event is vs_airbench_cpu.CpuEvent
    assert torch.cuda.Event is event and torch.nn.Module.half is half


def test_airbench94_runs_on_the_cpu_through_its_own_train94(tmp_path):
    write_cifar(tmp_path, per_batch=220)  # 1,100 training images: one batch of airbench's 1,024
    out = tmp_path / "peer.json"
    done = subprocess.run([sys.executable, str(BENCH / "vs_airbench_cpu.py"), "--data-dir", str(tmp_path), "--seeds",
                           "0", "--airbench-epochs", "1", "--limit-test", "60", "--only", "airbench", "--json-out",
                           str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    peer = result["airbench94"]
    assert peer["tta_views"] == 6 and peer["seeds"] == [0]
    run = peer["runs"][0]
    assert 0 <= run["tta_accuracy"] <= 1 and run["train_seconds"] > 0 and run["eval_seconds"] > 0
    assert "|   eval  |" in done.stdout  # airbench's own final row: its TTA evaluation ran
    assert "deepdive_gpu_preset" not in result
