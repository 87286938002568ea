"""Devices, meshes, axes, collectives and processes: the only part of lstmjax that names them.

* :mod:`~lstmjax.parallel.data_parallel`: :class:`DataParallel` (one device, ``jax.pmap`` or
  ``jax.jit`` over a mesh; a placement for :func:`lstmjax.fit`), :func:`make_mesh`, batch sharding.
* :mod:`~lstmjax.parallel.processes`: joining a multi-process run, simulated CPU devices, a
  local launcher.
* :mod:`~lstmjax.parallel.secure`: secure aggregation with the shares moved by collectives.

The steps it runs are the device-free ones of :mod:`lstmjax.training.steps`.
"""

from lstmjax.parallel.data_parallel import (
    DATA_AXIS,
    DataParallel,
    make_mesh,
    pad_batch,
    shard_batch_for_pmap,
    shard_batch_to_mesh,
)
from lstmjax.parallel.processes import (
    configure_cpu_devices,
    global_rows,
    initialize_distributed,
    launch_local_processes,
    process_count,
    process_index,
    replicate_across_processes,
)
from lstmjax.parallel.secure import secure_sum_across_devices

__all__ = [
    "DATA_AXIS",
    "DataParallel",
    "configure_cpu_devices",
    "global_rows",
    "initialize_distributed",
    "launch_local_processes",
    "make_mesh",
    "pad_batch",
    "process_count",
    "process_index",
    "replicate_across_processes",
    "secure_sum_across_devices",
    "shard_batch_for_pmap",
    "shard_batch_to_mesh",
]
