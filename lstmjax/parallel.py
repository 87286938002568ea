"""Devices: the one module that knows about them. Batches onto devices, two ways.

- **pmap style**: :func:`shard_batch_for_pmap` reshapes every ``[batch, ...]`` array to
  ``[devices, batch // devices, ...]`` and puts slice ``d`` on device ``d``, the layout
  ``jax.pmap`` maps over.
- **global arrays**: :func:`shard_batch_to_mesh` makes each array one global ``jax.Array`` of the
  whole batch, split along its first axis over the mesh axis ``data``
  (``NamedSharding(mesh, P("data"))``), which ``jax.jit`` partitions for you. With several
  processes, each passes its own part of the batch (from
  :func:`lstmjax.batching.process_shard`), and the global batch is their concatenation.

Batches come from :func:`lstmjax.batching.batches` as dicts of NumPy arrays; the functions here
work on any pytree of arrays with a leading batch axis.

>>> import numpy as np
>>> batch = {"token_ids": np.zeros((16, 8), np.int32), "lengths": np.ones(16, np.int32)}
>>> jax.tree.map(lambda x: x.shape, shard_batch_for_pmap(batch))
{'lengths': (8, 2), 'token_ids': (8, 2, 8)}
>>> sharded = shard_batch_to_mesh(batch, make_mesh())
>>> sharded["token_ids"].shape, sharded["token_ids"].sharding.spec
((16, 8), P('data',))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

__all__ = ["DATA_AXIS", "make_mesh", "shard_batch_for_pmap", "shard_batch_to_mesh"]

DATA_AXIS = "data"


def make_mesh(num_devices: int | None = None, *, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis mesh ``("data",)`` over the first ``num_devices`` devices (default: all).

    The axis is ``AxisType.Auto``: ``jax.jit`` propagates shardings from its inputs, as in the
    Flax lm1b example.

    >>> dict(make_mesh(2).shape)
    {'data': 2}
    """
    devices = list(devices) if devices is not None else jax.devices()
    if num_devices is not None:
        if not 1 <= num_devices <= len(devices):
            raise ValueError(f"num_devices must be in [1, {len(devices)}], got {num_devices}")
        devices = devices[:num_devices]
    return jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=(AxisType.Auto,), devices=devices)


def _check_divisible(tree: Any, parts: int, what: str) -> None:
    for path, x in jax.tree_util.tree_leaves_with_path(tree):
        if np.ndim(x) == 0 or np.shape(x)[0] % parts:
            raise ValueError(
                f"{jax.tree_util.keystr(path)} has shape {np.shape(x)}: its leading (batch) axis must "
                f"divide by {parts} {what}; use a batch size that is a multiple of it"
            )


def shard_batch_for_pmap(batch: Any, devices: Sequence[jax.Device] | None = None) -> Any:
    """Splits a batch over local devices along a new leading device axis, for ``jax.pmap``.

    Args:
      batch: a pytree of arrays ``[batch, ...]`` (e.g. ``token_ids <int32>[batch, time]``);
        ``batch`` must divide by the number of devices.
      devices: the devices (default ``jax.local_devices()``), in pmap's order.

    Returns:
      The same pytree of ``jax.Array``s ``[devices, batch // devices, ...]``, slice ``d`` on
      ``devices[d]`` (dtypes unchanged).

    >>> import numpy as np
    >>> out = shard_batch_for_pmap({"labels": np.arange(8, dtype=np.int32)}, jax.local_devices()[:4])
    >>> out["labels"].tolist()
    [[0, 1], [2, 3], [4, 5], [6, 7]]
    """
    devices = list(devices) if devices is not None else jax.local_devices()
    n = len(devices)
    _check_divisible(batch, n, "devices")
    sharding = NamedSharding(Mesh(np.array(devices), ("devices",)), PartitionSpec("devices"))

    def put(x):
        x = np.asarray(x)
        return jax.device_put(x.reshape(n, x.shape[0] // n, *x.shape[1:]), sharding)  # (D, B/D, ...)

    return jax.tree.map(put, batch)


def shard_batch_to_mesh(batch: Any, mesh: Mesh, *, axis: str = DATA_AXIS) -> Any:
    """Makes a batch global ``jax.Array``s sharded along ``axis`` of ``mesh`` (``P("data")``).

    Each process passes its local part of the batch; the result's leading axis is the sum over
    processes (``jax.make_array_from_process_local_data``). In one process, that is the batch.

    Args:
      batch: a pytree of arrays ``[local_batch, ...]``; ``local_batch`` must divide by this
        process's devices in the mesh.
      mesh: e.g. :func:`make_mesh`.
      axis: the mesh axis to split the batch over.

    Returns:
      The same pytree of ``jax.Array``s ``[global_batch, ...]`` with
      ``NamedSharding(mesh, P(axis))``.

    >>> import numpy as np
    >>> x = shard_batch_to_mesh(np.arange(8, dtype=np.int32), make_mesh(4))
    >>> [s.data.tolist() for s in x.addressable_shards]
    [[0, 1], [2, 3], [4, 5], [6, 7]]
    """
    sharding = NamedSharding(mesh, PartitionSpec(axis))
    local = sum(d.process_index == jax.process_index() for d in mesh.devices.flat)
    _check_divisible(batch, local, "local devices of the mesh")
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), batch)
