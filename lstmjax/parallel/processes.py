"""Several processes: joining a multi-process run, the devices a process sees, and a local launcher.

Every process runs the same ``lstmjax train ...`` command. :func:`initialize_distributed` joins
them through ``jax.distributed`` (on CPUs the collectives go over gloo); after it,
``jax.devices()`` lists every process's devices and a mesh spans them all. Each process reads the
whole split and feeds its part of every global batch (``DataParallel.plan``), so the global
batches are those of one process; :func:`global_rows` adds up counts held per process, and
:func:`replicate_across_processes` makes one global replicated state from the identical copies
every process holds. :func:`launch_local_processes` starts N such processes on this machine,
to try multi-host training locally (``lstmjax train --local-processes N``).
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding

__all__ = [
    "configure_cpu_devices",
    "global_rows",
    "initialize_distributed",
    "launch_local_processes",
    "process_count",
    "process_index",
    "replicate_across_processes",
]


def process_index() -> int:
    """This process's index in a multi-process run (``0`` alone).

    Example:
      >>> process_index()
      0
    """
    return jax.process_index()


def process_count() -> int:
    """The number of processes in the run (``1`` alone).

    Example:
      >>> process_count()
      1
    """
    return jax.process_count()


def configure_cpu_devices(num_devices: int | None) -> None:
    """Simulate ``num_devices`` CPU devices in this process (``jax_num_cpu_devices``), before JAX starts.

    Does nothing for ``None``, on a GPU or TPU platform (``JAX_PLATFORMS``), or once JAX has
    started its backends (then :class:`~lstmjax.parallel.DataParallel` takes the first devices,
    or says there are too few).

    Example:
      >>> configure_cpu_devices(None)  # nothing asked, nothing done
    """
    if num_devices is None or os.environ.get("JAX_PLATFORMS", "cpu") not in ("", "cpu"):
        return
    try:
        jax.config.update("jax_num_cpu_devices", num_devices)
    except RuntimeError:  # JAX already started (called from a running program)
        pass


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> None:
    """Join a multi-process run (``jax.distributed.initialize``), on CPUs, GPUs or TPUs alike.

    Arguments default to the environment: ``LSTMJAX_COORDINATOR`` (``host:port``),
    ``LSTMJAX_NUM_PROCESSES`` and ``LSTMJAX_PROCESS_ID``; when none are set, JAX's own
    detection applies (SLURM, Open MPI, Kubernetes, Cloud TPU). On CPUs the collectives go over
    gloo. Call it before anything else touches JAX's devices.

    After it, ``jax.devices()`` lists every process's devices, ``jax.process_index()`` names
    this one, and :class:`~lstmjax.parallel.DataParallel` in ``"mesh"`` mode spans them all.

    Example:
      >>> import os
      >>> os.environ.get("LSTMJAX_COORDINATOR") is None   # single-process here: nothing to join
      True
    """
    _die_with_launcher()
    coordinator_address = coordinator_address or os.environ.get("LSTMJAX_COORDINATOR")
    if num_processes is None and "LSTMJAX_NUM_PROCESSES" in os.environ:
        num_processes = int(os.environ["LSTMJAX_NUM_PROCESSES"])
    if process_id is None and "LSTMJAX_PROCESS_ID" in os.environ:
        process_id = int(os.environ["LSTMJAX_PROCESS_ID"])
    if jax.config.jax_platforms in (None, "", "cpu") or os.environ.get("JAX_PLATFORMS", "cpu") == "cpu":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id)


def global_rows(local_rows: int) -> int:
    """Examples over all processes, each holding its own shard of ``local_rows``.

    Example:
      >>> global_rows(10)   # one process: its own count
      10
    """
    if jax.process_count() == 1:
        return local_rows
    return int(np.sum(multihost_utils.process_allgather(np.array(local_rows, np.int64))))


def replicate_across_processes(tree, sharding: NamedSharding):
    """Global replicated arrays from the identical host copies every process holds.

    Args:
      tree: a pytree of arrays (typed PRNG keys included), the same values in every process.
      sharding: a replicated ``NamedSharding`` over the run's mesh.

    Returns:
      The same pytree, of global ``jax.Array`` values.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jax.sharding import NamedSharding, PartitionSpec
      >>> from lstmjax.parallel import make_mesh
      >>> out = replicate_across_processes({"w": jnp.ones(2)}, NamedSharding(make_mesh(2), PartitionSpec()))
      >>> out["w"].sharding.is_fully_replicated, out["w"].tolist()
      (True, [1.0, 1.0])
    """

    def put(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            data = jax.make_array_from_process_local_data(sharding, _host(jax.random.key_data(x)))
            wrap = functools.partial(jax.random.wrap_key_data, impl=jax.random.key_impl(x))
            return jax.jit(wrap, out_shardings=sharding)(data)
        return jax.make_array_from_process_local_data(sharding, _host(x))

    return jax.tree.map(put, tree)


def _host(x) -> np.ndarray:
    """This process's full copy of a value (a global array must be fully replicated)."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        if not x.is_fully_replicated:
            raise ValueError("expected a fully replicated array")
        return np.asarray(x.addressable_data(0))
    return np.asarray(x)


# --------------------------------------------------------------------------- a local launcher


def launch_local_processes(argv: Sequence[str], num_processes: int) -> int:
    """Run ``python -m lstmjax *argv`` in ``num_processes`` processes joined through ``jax.distributed``.

    Each child gets ``LSTMJAX_COORDINATOR`` (a free port on 127.0.0.1), ``LSTMJAX_NUM_PROCESSES``
    and its ``LSTMJAX_PROCESS_ID``; process 0's output is shown, the others' stdout discarded.
    When one fails, the others are killed (they would wait for it at the next collective for
    ever), and every child dies with this process (``LSTMJAX_LAUNCHER_PID``: on Linux each child
    asks for SIGKILL when its launcher dies, in :func:`initialize_distributed`).

    Args:
      argv: the command's arguments (without the launcher's own option).
      num_processes: how many processes.

    Returns:
      ``0``, or the first failed child's exit status (``128 + N`` for a child killed by signal N).

    Example:
      >>> launch_local_processes(["train", "--layers", "0"], 2)  # both exit 2: a bad option
      2
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    try:
        for i in range(num_processes):
            env = {**os.environ, "LSTMJAX_COORDINATOR": f"127.0.0.1:{port}", "LSTMJAX_LAUNCHER_PID": str(os.getpid()),
                   "LSTMJAX_NUM_PROCESSES": str(num_processes), "LSTMJAX_PROCESS_ID": str(i)}
            out = None if i == 0 else subprocess.DEVNULL  # process 0 speaks for the run
            procs.append(subprocess.Popen([sys.executable, "-m", "lstmjax", *argv], env=env, stdout=out))
        while any(p.poll() is None for p in procs):
            if any(p.returncode not in (None, 0) for p in procs):
                break
            time.sleep(0.2)
    finally:
        # SIGKILL: a process that joined jax.distributed treats SIGTERM as a preemption notice
        # and keeps running, so terminate() would leave it waiting at a collective for ever.
        for p in procs:
            if p.poll() is None:
                p.kill()
    failed = [code for code in (p.wait() for p in procs) if code != 0]
    return (failed[0] if failed[0] > 0 else 128 - failed[0]) if failed else 0  # killed by signal N: 128 + N


def _die_with_launcher() -> None:
    """In a child of :func:`launch_local_processes` (Linux): receive SIGKILL when the launcher dies,
    however it dies; if it already has, exit now."""
    launcher = os.environ.get("LSTMJAX_LAUNCHER_PID")
    if not launcher or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != int(launcher):  # the launcher died before the request: nobody would kill us
        os._exit(1)
