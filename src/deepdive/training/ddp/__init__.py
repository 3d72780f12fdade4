"""Data-parallel training on PyTorch's own distributed engine: torchrun + DistributedDataParallel.

torchrun starts the processes and their rendezvous (one node: ``--standalone``; many: the c10d
rendezvous), restarts them under ``--max-restarts``, and hands each its place in environment
variables (RANK, WORLD_SIZE, LOCAL_RANK, TORCHELASTIC_RESTART_COUNT). The training loop
(``training/loop.py``) is the same code in one process and in W: it asks its process group - a
``ProcessGroup`` under torchrun, the trivial ``OneProcess`` otherwise - for its share of each batch,
the sums of a few numbers, and the model as DDP wraps it, and lets rank 0 alone (``group.main``)
write the run folder. The pieces live by concept:

- ``group.py``: the process group, both kinds, and what the loop asks of it;
- ``torchrun.py``: the environment torchrun sets, what a run of several processes refuses, joining the group;
- ``sharding.py``: the training split as one process steps through it (``ShardedSplit``);
- ``layers.py``: dropout and BatchNorm over the global batch (``GlobalBatchDropout``, ``CpuSyncBatchNorm``);
- ``launcher.py``: ``deepdive train --nproc N`` and the run a restarted worker resumes (above
  ``training.setup`` and ``training.resume``: only the CLI calls it).

The folder a process other than rank 0 sees is ``storage.read_only_run.ReadOnlyRun``.

**Exactly the single-process run, split.** With W processes and the global batch B (``-b``),
step k of an epoch takes the same B images of the epoch's permutation as one process would;
process r takes a contiguous share n_r of them (sizes differ by at most one, so a final partial
batch of n images is split as evenly as it can be). Each process scales its mean loss by
W·n_r/n, and DDP averages gradients over the W processes:

    (1/W) Σ_r (W·n_r/n) ∇(1/n_r Σ_{i∈r} ℓ_i)  =  ∇(1/n Σ_i ℓ_i)

the single-process gradient, up to the order of float32 additions. Random numbers are drawn
for the whole global batch on every process, which keeps its own rows: the augmenter's flips and
crops (the loop hands it the rows), and dropout's masks (``GlobalBatchDropout``: on the CPU the very
masks one process draws, bit for bit), so every generator moves as the single process's does and the
run does not depend on how many processes share it. BatchNorm normalizes each process's share unless
``--sync-bn`` (statistics of the global batch: torch's SyncBatchNorm on CUDA, ``CpuSyncBatchNorm`` on
the CPU).

**Metrics are global.** Evaluation splits a test set into contiguous shares, no image twice and
none padded in, and adds (loss sum, correct, count) over all processes. The training loss, the
stop signals and rank 0's clock travel in one small all-reduce per step, so every process takes
the same decisions (divergence, SIGINT/SIGTERM, --time-budget) at the same step. Only rank 0
logs, writes the run folder and its checkpoints; the state it saves holds no rank, so a run
resumes with any number of processes.

**Failure.** Before the first collective every process reports whether its setup worked
(``ProcessGroup.agree``); a process that dies or hangs later makes the others' collectives fail, at
once (gloo sees the socket close) or after ``--dist-timeout`` seconds, and they end with one clear
line. A worker torchrun restarts resumes the run folder at ``--out`` (``launcher.restarted_run``).
"""
