"""What this machine offers that the configuration's choices depend on: memory for decoded data, native bf16."""
from __future__ import annotations


def memory_limit() -> int:
    """Bytes a decoded dataset may take: half of the available memory (an image folder larger than this is
    streamed from disk; a synthetic dataset larger than this is refused)."""
    return available_memory() // 2


def available_memory() -> int:
    """MemAvailable from /proc/meminfo (16 GB where there is none)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 16 << 30


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when this CPU computes bf16 in hardware (AVX512-BF16 or AMX).

    oneDNN then trains fastnet 1.6-1.8x faster than in fp32 (``bench/cpu_precision.py``
    on a 2-core AMD EPYC with AVX512-BF16: 64/128/256, batch 128, 394 -> 714 img/s);
    without it oneDNN emulates bf16, which is expected to be slower than fp32
    (no such CPU was at hand to measure), so recipes leave it off.
    """
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False
