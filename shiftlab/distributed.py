"""Several processes per job (DDP), in a way that survives ``shiftlab-train -m``.

Lightning's own launcher re-executes ``sys.argv`` for ranks > 0; under a Hydra multirun that
command is the whole sweep, so every child starts the sweep again. shiftlab launches ranks itself
instead: the job's first process (rank 0, the one Hydra runs) writes the resolved config, starts
ranks 1..N-1 as ``python -m shiftlab.distributed RUN_DIR`` (which run the same job from that
config, nothing else), and owns the process group for the length of the job. Each Trainer then
finds the group already initialised and only wraps the model. The next job of a sweep gets new
processes and a new group, so a sweep of K jobs with N devices starts exactly K x N processes.

Processes started by someone else join instead of launching: ``torchrun`` (TorchElastic) and
``srun`` (SLURM, e.g. through the submitit launcher with ``tasks_per_node=N``). Every process then
takes rank 0's run directory, so whatever each one's Hydra computed, the job has one directory.

Batch sizes stay *global*: with N processes each takes ``batch_size / N`` samples of every batch
(:class:`~shiftlab.data.sampling.EpochIndexSampler`), so a run's optimisation does not depend on
how many devices it had.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.distributed as dist

from shiftlab.utils.run_layout import RunLayout

RANK_ENV = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "NODE_RANK")
LAUNCHED_BY_SHIFTLAB = "SHIFTLAB_DDP_JOB"  # set in the processes shiftlab started
RANK_ENTRY_POINT = "shiftlab.rank"  # the module ranks > 0 run (it runs the pipeline; this module must not import it)
TIMEOUT = timedelta(minutes=int(os.environ.get("SHIFTLAB_DDP_TIMEOUT_MIN", "30")))


_OWN_RANKS = False  # True while this process is in a multi-process job whose ranks shiftlab started


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_zero(self) -> bool:
        return self.rank == 0


def current_world() -> World:
    """This process's place in the job (rank 0 of 1 when nothing is distributed)."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    return World()


def trainer_plugins() -> list:
    """The cluster environment a Trainer must use in a job whose ranks shiftlab started: the plain
    one (ranks from LOCAL_RANK / NODE_RANK), so that Lightning does not take the ranks from a SLURM
    allocation the job merely runs inside."""
    if not _OWN_RANKS:
        return []
    from lightning.fabric.plugins.environments import LightningEnvironment

    return [LightningEnvironment()]


def is_rank_zero() -> bool:
    return current_world().is_zero


def barrier() -> None:
    if current_world().size > 1:
        dist.barrier()


def gather_objects(value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank (``[value]`` when not distributed)."""
    world = current_world()
    if world.size == 1:
        return [value]
    gathered: list[Any] = [None] * world.size
    dist.all_gather_object(gathered, value)
    return gathered


@contextlib.contextmanager
def full_parameters(trainer) -> Iterator[None]:
    """Inside the block every parameter is whole on rank 0, for exports: FSDP shards them across
    processes (all ranks must enter); with any other strategy they are whole already."""
    if "FSDP" not in type(trainer.strategy).__name__:
        yield
        return
    from torch.distributed.fsdp import FullyShardedDataParallel

    with FullyShardedDataParallel.summon_full_params(trainer.strategy.model, writeback=False, rank0_only=True,
                                                     offload_to_cpu=True):
        yield


def processes_per_node(trainer_cfg) -> int:
    """How many processes a job runs on each node: the trainer's ``devices`` under a DDP-style
    strategy (``ddp``, ``fsdp``), else 1."""
    strategy = str(trainer_cfg.get("strategy") or "auto")
    devices = trainer_cfg.get("devices", 1)
    if not strategy.startswith(("ddp", "fsdp")):
        return 1
    if strategy in ("ddp_spawn", "ddp_fork", "ddp_notebook"):
        raise ValueError(f"trainer.strategy={strategy}: use strategy=ddp (shiftlab starts one process per device "
                         "itself, which survives -m sweeps and keeps every stage in the same processes)")
    if not isinstance(devices, int) or devices < 1:
        raise ValueError(f"trainer.devices must be a positive number of devices with strategy={strategy}, got {devices!r}")
    return devices


def external_launcher() -> str | None:
    """``torchrun`` or ``slurm`` when this process is one of several that someone else started."""
    if os.environ.get(LAUNCHED_BY_SHIFTLAB):
        return "shiftlab"
    if all(key in os.environ for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE")):
        return "torchrun"
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in os.environ and os.environ.get(
            "SLURM_JOB_NAME") not in ("bash", "interactive"):
        return "slurm"
    return None


def backend_for(trainer_cfg) -> str:
    accelerator = str(trainer_cfg.get("accelerator") or "auto")
    return "nccl" if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available() else "gloo"


@contextlib.contextmanager
def distributed_job(trainer_cfg, run_dir: Path, config_path: Path | None = None) -> Iterator[tuple[World, Path]]:
    """The job's processes and process group, for the ``with`` block; yields (world, run dir).

    One process (``devices: 1`` or no DDP strategy): nothing happens. Rank 0 of a job shiftlab
    launches: starts ranks 1..N-1 from ``config_path``, then waits for them at the end (and stops
    them if the job failed). Processes someone else launched join the group and adopt rank 0's run
    directory. The group is destroyed at the end, so the next job of a sweep starts afresh."""
    launcher = external_launcher()
    per_node = processes_per_node(trainer_cfg)
    if launcher is None and per_node == 1:
        yield World(), run_dir
        return
    global _OWN_RANKS
    backend = backend_for(trainer_cfg)
    children: list[subprocess.Popen] = []
    saved_env = {key: os.environ.get(key) for key in RANK_ENV}
    failed = True
    try:
        if launcher is None:
            if int(trainer_cfg.get("num_nodes") or 1) > 1:
                raise ValueError("trainer.num_nodes > 1 needs processes started on every node: run under SLURM "
                                 "(launcher=slurm with tasks_per_node) or torchrun; see docs/user_guide.md, \"Several GPUs and several nodes\"")
            if config_path is None:
                raise ValueError("launching ranks needs the job's resolved config file")
            port = _free_port()
            os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(per_node), RANK="0",
                              LOCAL_RANK="0", NODE_RANK="0")
            children = [_start_rank(rank, per_node, port, run_dir, config_path) for rank in range(1, per_node)]
        _init_group(backend, launcher)
        _OWN_RANKS = launcher in (None, "shiftlab")
        world = current_world()
        run_dir = Path(gather_objects(str(run_dir))[0])  # rank 0's directory for every process
        yield world, run_dir
        failed = False
    finally:
        _OWN_RANKS = False
        _end_group(failed)
        _stop_children(children, failed)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _init_group(backend: str, launcher: str | None) -> None:
    if dist.is_initialized():
        raise RuntimeError("a torch.distributed process group is already active in this process; shiftlab starts "
                           "and ends one per job")
    if launcher == "slurm":
        from lightning.fabric.plugins.environments import SLURMEnvironment

        env = SLURMEnvironment()
        os.environ.setdefault("MASTER_ADDR", env.main_address)
        os.environ.setdefault("MASTER_PORT", str(env.main_port))
        os.environ.setdefault("WORLD_SIZE", str(env.world_size()))
        os.environ.setdefault("RANK", str(env.global_rank()))
        os.environ.setdefault("LOCAL_RANK", str(env.local_rank()))
        os.environ.setdefault("NODE_RANK", str(env.node_rank()))
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group(backend, rank=int(os.environ["RANK"]), world_size=int(os.environ["WORLD_SIZE"]),
                            timeout=TIMEOUT)


def _end_group(failed: bool) -> None:
    if not dist.is_initialized():
        return
    if not failed:
        with contextlib.suppress(Exception):
            dist.barrier()
    dist.destroy_process_group()


def _start_rank(rank: int, world_size: int, port: int, run_dir: Path, config_path: Path) -> subprocess.Popen:
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world_size), RANK=str(rank),
               LOCAL_RANK=str(rank), NODE_RANK="0", **{LAUNCHED_BY_SHIFTLAB: "1"})
    log_path = RunLayout(run_dir).rank_log(rank)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", RANK_ENTRY_POINT, str(run_dir), str(config_path)],
                                env=env, stdout=log, stderr=subprocess.STDOUT)


def _stop_children(children: list[subprocess.Popen], failed: bool) -> None:
    """Wait for ranks > 0 (they end their job right after rank 0); stop them if the job failed."""
    deadline = time.monotonic() + (30 if failed else TIMEOUT.total_seconds())
    for child in children:
        try:
            child.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    bad = [(i + 1, child.returncode) for i, child in enumerate(children) if child.returncode != 0]
    if bad and not failed:
        raise RuntimeError("distributed ranks ended with an error: " + ", ".join(f"rank {r} exit {c}" for r, c in bad)
                           + " (their output is in rank<N>.log in the run directory)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
