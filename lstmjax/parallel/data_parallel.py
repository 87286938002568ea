"""Data parallelism three ways, one train step.

:class:`DataParallel` runs the same pure steps of :mod:`lstmjax.training.steps` on one device
(``"none"``), replicated under ``jax.pmap`` with the gradient sums of each device's slice
``psum``-med over a named axis between :func:`~lstmjax.training.steps.gradient_sums` and
:func:`~lstmjax.training.steps.apply_gradient_sums` (``"pmap"``, the classic recipe, in
maintenance since JAX 0.8), or :func:`~lstmjax.training.train_step` under ``jax.jit`` with the
state replicated and the batch sharded along the ``data`` axis of a mesh (``"mesh"``, JAX's
recommended path: XLA inserts the gradient all-reduce itself). It is a placement
(:class:`lstmjax.training.placement.Placement`): pass it to :func:`lstmjax.fit` and
:func:`lstmjax.evaluate` as ``parallel=``. All three give the same parameters to float rounding,
with or without dropout, because each example's dropout key depends on its position in the
global batch, not on the device that holds it. The same code runs over several processes
(:func:`lstmjax.parallel.initialize_distributed`): each process cuts the same global batches from
the whole split and feeds its own part of every one, so N processes give the model one process
gives, to float rounding (the order in which gradient sums are added differs).

A global batch that does not divide by the device count is padded with filler examples whose
``mask`` is ``False``; they contribute nothing to the loss, the gradients or the metrics, so
results stay exact (no error, no dropped examples).

- **pmap style**: :func:`shard_batch_for_pmap` reshapes every ``[batch, ...]`` array to
  ``[devices, batch // devices, ...]`` and puts slice ``d`` on device ``d``, the layout
  ``jax.pmap`` maps over.
- **global arrays**: :func:`shard_batch_to_mesh` makes each array one global ``jax.Array`` of the
  whole batch, split along its first axis over the mesh axis ``data``
  (``NamedSharding(mesh, P("data"))``), which ``jax.jit`` partitions for you. With several
  processes, each passes its own part of the batch (``batches(..., part=(index, count))``: every
  process cuts the same global batches and takes its slice), and the global batch is their
  concatenation.

Batches come from :func:`lstmjax.data.batches` as dicts of NumPy arrays; the functions here
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

import collections
import dataclasses
import functools
import math
import operator
from collections.abc import Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from lstmjax.parallel.processes import replicate_across_processes
from lstmjax.training.placement import StateStep, copy_tree, keyed, num_rows
from lstmjax.training.steps import (
    apply_gradient_sums,
    eval_step,
    gradient_sums,
    step_key,
    train_step,
)

__all__ = [
    "DATA_AXIS",
    "DataParallel",
    "make_mesh",
    "pad_batch",
    "shard_batch_for_pmap",
    "shard_batch_to_mesh",
]

Mode = Literal["auto", "none", "pmap", "mesh"]

#: The name of the mesh axis (and pmap axis) that the batch is split along.
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
    # The axis name pmap's own outputs carry, so that a pmapped step sees one layout and compiles once.
    sharding = NamedSharding(Mesh(np.array(devices), (DATA_AXIS,)), PartitionSpec(DATA_AXIS))

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


# --------------------------------------------------------------------------- padding to the devices


def pad_batch(batch: dict[str, np.ndarray], multiple: int) -> dict[str, np.ndarray]:
    """Pad a batch with filler examples (``mask`` False, PAD ids, length 0) to a multiple of ``multiple``.

    Adds ``mask`` (all True) if the batch has none. Filler rows change no loss, gradient or metric.

    >>> b = pad_batch({"token_ids": np.ones((3, 2), np.int32), "lengths": np.full(3, 2, np.int32),
    ...                "labels": np.zeros(3, np.int32)}, 4)
    >>> b["lengths"].tolist(), b["mask"].tolist()
    ([2, 2, 2, 0], [True, True, True, False])
    """
    n = len(batch["labels"])
    batch = dict(batch)
    if "mask" not in batch:
        batch["mask"] = np.ones(n, np.bool_)
    extra = (-n) % multiple
    if extra == 0:
        return batch
    return {k: np.concatenate([np.asarray(v), np.zeros((extra,) + np.shape(v)[1:], np.asarray(v).dtype)])
            for k, v in batch.items()}


# --------------------------------------------------------------------------- the strategy


@dataclasses.dataclass(frozen=True)
class DataParallel:
    """Where a training step runs: one device, ``pmap`` over local devices, or ``jit`` over a mesh.

    Build one with :meth:`create`; then ``put_state`` once, ``put_batch`` each batch, and call
    the jitted ``train_step()`` / ``eval_step()``. ``get_state`` gives back an ordinary state
    (for checkpoints), ``get_metrics`` ordinary sums.

    Attributes:
      mode: ``"none"``, ``"pmap"`` or ``"mesh"``.
      devices: the devices used (all processes' for ``"mesh"``).
      mesh: the ``("data",)`` mesh (``"mesh"`` mode), else ``None``.

    Example:
      >>> import jax, numpy as np
      >>> from lstmjax import TextClassifier
      >>> from lstmjax import create_train_state, make_optimizer
      >>> state = create_train_state(TextClassifier(20, 2, embed_dim=4, hidden_size=4),
      ...                            jax.random.key(0), make_optimizer())
      >>> batch = {"token_ids": np.ones((6, 3), np.int32), "lengths": np.full(6, 3, np.int32),
      ...          "labels": np.zeros(6, np.int32)}
      >>> results = {}
      >>> for mode in ("none", "pmap", "mesh"):
      ...     dp = DataParallel.create(mode, num_devices=4)
      ...     s, m = dp.train_step()(dp.put_state(state), dp.put_batch(batch))
      ...     results[mode] = dp.get_state(s).params
      ...     print(mode, dp.num_devices, int(dp.get_metrics(m)["count"]))
      none 1 6
      pmap 4 6
      mesh 4 6
      >>> all(np.allclose(a, b, atol=1e-6) for a, b in zip(jax.tree.leaves(results["none"]),
      ...                                                   jax.tree.leaves(results["pmap"])))
      True
    """

    mode: str
    devices: tuple
    mesh: Mesh | None = None

    @classmethod
    def create(cls, mode: Mode = "auto", num_devices: int | None = None) -> DataParallel:
        """``"auto"``: ``"mesh"`` when more than one device is visible, else ``"none"``.

        ``num_devices`` limits the devices used (default: all; ``"none"`` uses one).
        """
        if mode not in ("auto", "none", "pmap", "mesh"):
            raise ValueError(f"parallel must be 'auto', 'none', 'pmap' or 'mesh'; got {mode!r}")
        available = jax.devices() if mode != "pmap" else jax.local_devices()
        if num_devices is not None and not 1 <= num_devices <= len(available):
            raise ValueError(f"--devices {num_devices}: only {len(available)} device(s) visible "
                             f"({available[0].platform}); on a CPU, set the count before JAX starts "
                             "(lstmjax train --devices N does)")
        if mode == "auto":
            count = num_devices or len(available)
            mode = "mesh" if count > 1 else "none"
        if mode == "none":
            if jax.process_count() > 1:
                raise ValueError("several processes need parallel mode 'mesh'")
            return cls("none", (jax.local_devices()[0],))
        devices = tuple(available[: num_devices or len(available)])
        if mode == "pmap":
            if jax.process_count() > 1:
                raise ValueError("lstmjax runs several processes with parallel mode 'mesh', not 'pmap'")
            return cls("pmap", devices)
        return cls("mesh", devices, make_mesh(devices=devices))

    @property
    def num_devices(self) -> int:
        return len(self.devices)

    @property
    def processes(self) -> int:
        """Processes taking part (``jax.process_count()``); each feeds its part of every global batch."""
        return jax.process_count()

    @property
    def _local_devices(self) -> int:
        return sum(d.process_index == jax.process_index() for d in self.devices)

    # ---- state ------------------------------------------------------------------------------

    def put_state(self, state):
        """The state on the devices: one copy, one per device (pmap), or replicated over the mesh.

        Always a copy: the train step donates its state, and the caller's must survive that. The
        copy is complete when this returns, so a step that donates it never races the transfer.
        """
        return jax.block_until_ready(self._put_state(state))

    def _put_state(self, state):
        if self.mode == "pmap":  # a leading device axis, one copy per device
            n = len(self.devices)
            sharding = NamedSharding(Mesh(np.array(self.devices), (DATA_AXIS,)), PartitionSpec(DATA_AXIS))
            return jax.tree.map(lambda x: jax.device_put(jnp.broadcast_to(jnp.asarray(x)[None], (n, *jnp.shape(x))),
                                                         sharding), state)
        if self.mode == "mesh" and self.processes > 1:
            return replicate_across_processes(state, _replicated(self))
        # device_put may reuse the source buffer on its own device even with may_alias=False, and
        # the step donates what it gets: copy first, so the caller's state is never the one donated.
        target = self.devices[0] if self.mode == "none" else _replicated(self)
        return jax.device_put(copy_tree(state), target)

    def get_state(self, state):
        """An ordinary (unreplicated) state back from :meth:`put_state`'s layout."""
        if self.mode == "pmap":
            return jax.tree.map(lambda x: x[0], state)
        return state

    # ---- batches ----------------------------------------------------------------------------

    def put_batch(self, batch: dict[str, np.ndarray]):
        """A host batch (this process's part of the global batch) onto the devices, padded to fit."""
        batch = pad_batch(batch, self._local_devices)
        if self.mode == "none":
            return jax.device_put(batch, self.devices[0])
        if self.mode == "pmap":
            return shard_batch_for_pmap(batch, self.devices)
        return shard_batch_to_mesh(batch, self.mesh)

    def plan(self, dataset, batch_size: int, max_length: int | None) -> dict[str, Any]:
        """This process's :func:`lstmjax.data.batches` options for a global ``batch_size``.

        Every process reads the whole split and cuts the same global batches (their order,
        bucketing and padded length are decided from all rows); with several processes each
        takes its part of every global batch (the part its devices hold in the mesh), padded
        first to a multiple of the devices. So the global batches, and the model, are the same
        on any number of processes as on one.
        """
        plan = {"batch_size": batch_size, "num_batches": math.ceil(num_rows(dataset) / batch_size),
                "max_length": max_length}
        if self.processes > 1:
            plan.update(pad_to=self.num_devices, part=(self._part_index(), self.processes))
        return plan

    def _part_index(self) -> int:
        """Which part of a global batch this process holds: its devices' place in the mesh."""
        flat = list(self.mesh.devices.flat)
        mine = [i for i, d in enumerate(flat) if d.process_index == jax.process_index()]
        if mine != list(range(mine[0], mine[0] + len(mine))) or len(flat) != len(mine) * self.processes:
            raise ValueError("each process must hold one contiguous block of the mesh's devices, all blocks of "
                             "one size")
        return mine[0] // len(mine)

    # ---- steps ------------------------------------------------------------------------------

    def train_step(self, step: StateStep | None = None) -> StateStep:
        """``step(state, batch) -> (state, metrics)``, compiled for this layout (the state is
        donated, except under pmap).

        Compiled once per layout (and batch shape) for the whole program, however many times
        :func:`lstmjax.fit` is called. ``step`` replaces the standard step (``keyed(train_step)``)
        with another of the same signature (e.g. ``keyed(lstmjax.privacy.dp_train_step)``) under
        ``"none"`` and ``"mesh"``; ``"pmap"`` composes the standard step's pieces.
        """
        return _train_step_for(self, step)

    def eval_step(self, step=None):
        """``run(state, batch) -> sums`` for this layout: ``step(state, batch)``'s metric sums
        (default :func:`lstmjax.training.eval_step`), summed over the devices."""
        return _eval_step_for(self, step or eval_step)

    def get_metrics(self, metrics):
        """Summed metrics as host NumPy values (pmap's are identical on every device: take one)."""
        if self.mode == "pmap":
            metrics = jax.tree.map(lambda x: x[0], metrics)
        return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else x, metrics)


_METRICS = operator.itemgetter(1)  # a train step's (state, metrics) -> metrics; the state is donated


@functools.cache
def _train_step_for(dp: DataParallel, step: StateStep | None):
    if dp.mode == "pmap":
        if step is not None:
            raise ValueError("under pmap, DataParallel runs the standard step (its pieces with a psum "
                             "between them); run another step with parallel 'none' or 'mesh'")
        # No donation under pmap: measured 1.5-2.3x slower per step with it on CPU devices.
        return _bounded_dispatch(jax.pmap(_pmap_train_step, axis_name=DATA_AXIS, devices=dp.devices), dp, _METRICS)
    step = step or keyed(train_step)
    if dp.mode == "mesh":
        batch = NamedSharding(dp.mesh, PartitionSpec(DATA_AXIS))
        return _bounded_dispatch(jax.jit(_in_mesh(step, dp.mesh), in_shardings=(_replicated(dp), batch),
                                         out_shardings=_replicated(dp), donate_argnums=0), dp, _METRICS)
    return jax.jit(step, donate_argnums=0)


def _pmap_train_step(state, batch):
    """One device's part of :func:`~lstmjax.training.train_step`: its slice's gradient sums, summed
    over the devices (``psum``), then the same update on every device."""
    offset = jax.lax.axis_index(DATA_AXIS) * batch["labels"].shape[0]  # this slice's first example
    grads, sums = gradient_sums(state, batch, step_key(state), offset=offset)
    grads, sums = jax.lax.psum((grads, sums), DATA_AXIS)
    return apply_gradient_sums(state, grads, sums), sums


def _in_mesh(step, mesh: Mesh):
    """``step`` traced with ``mesh`` as the abstract mesh, so the model knows the batch is split
    (:func:`lstmjax.nn.scan.batch_partitioned`: the fused LSTM then sums weight gradients once)."""

    def run(*args):
        with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
            return step(*args)

    return run


def _replicated(dp: DataParallel) -> NamedSharding:
    return NamedSharding(dp.mesh, PartitionSpec())


@functools.cache
def _eval_step_for(dp: DataParallel, step):
    if dp.mode == "pmap":
        def summed(state, batch):  # the same sums on every device
            return jax.lax.psum(step(state, batch), DATA_AXIS)

        return _bounded_dispatch(jax.pmap(summed, axis_name=DATA_AXIS, devices=dp.devices), dp)
    if dp.mode == "mesh":
        return _bounded_dispatch(jax.jit(_in_mesh(step, dp.mesh), in_shardings=(
            _replicated(dp), NamedSharding(dp.mesh, PartitionSpec(DATA_AXIS))), out_shardings=_replicated(dp)), dp)
    return jax.jit(step)


def _bounded_dispatch(step, dp: DataParallel, metrics_of=lambda out: out):
    """``step`` with a bound on how far a loop can queue steps ahead of the devices (CPU only).

    JAX dispatches asynchronously, so a loop can queue many steps on each device before the
    first has run. XLA's CPU runtime, with several devices in one program, then deadlocks now
    and then: one device never reaches the step's all-reduce ("Expected 8 threads to join the
    rendezvous, but only 7 of them arrived"; after 40 s XLA aborts the process). In the native
    stacks of a hung process, the runtime's launch threads all wait, inside launches of queued
    steps, for those steps' inputs. Measured on 2 busy cores, 8 host devices: unbounded, the
    ``lstmjax train`` job hung in about one run in four, and a small synthetic step within 500
    steps (also at 2 devices); with at most two steps in flight, 40,000 synthetic steps and 40
    jobs ran through.

    So on CPU devices, after dispatching step *n* this waits for step *n - 1*'s outputs (chosen
    by ``metrics_of``; never the state, which step *n* donated): one step stays queued behind
    the running one, which keeps the overlap of Python dispatch and batch transfer with compute.
    With several processes (gloo collectives; the same deadlock seen in about one run in four,
    2 processes x 2 devices) each step is waited for before the next is dispatched. One device,
    or GPUs and TPUs: ``step`` itself.
    """
    if jax.process_count() > 1:
        return _BoundedStep(step, metrics_of, in_flight=1)
    if dp.num_devices == 1 or dp.devices[0].platform != "cpu":
        return step
    return _BoundedStep(step, metrics_of, in_flight=2)


class _BoundedStep:
    """A step whose calls return once the call ``in_flight - 1`` before them has finished.

    So at most ``in_flight`` calls are ever queued or running (``1``: each call waits for
    itself). Everything else (``lower``, ``trace``, ...) is the wrapped step's.
    """

    def __init__(self, step, metrics_of, in_flight: int):
        self.__wrapped__ = step
        self._metrics_of = metrics_of
        self._in_flight = in_flight
        self._pending = collections.deque()

    def __call__(self, *args, **kwargs):
        out = self.__wrapped__(*args, **kwargs)
        self._pending.append(self._metrics_of(out))
        while len(self._pending) >= self._in_flight:
            jax.block_until_ready(self._pending.popleft())
        return out

    def __getattr__(self, name):
        return getattr(self.__wrapped__, name)


