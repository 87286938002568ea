"""Where the loop's steps run, as an interface; and the default: one (the default) device.

:func:`lstmjax.fit` and :func:`lstmjax.evaluate` never name a device. They ask a *placement*
for what they need: the state and each batch put where the step runs, the step compiled for
that layout, this process's part of every epoch's batches, and the metric sums back on the host.
:class:`OneDevice` (here, the default) jits the step for JAX's default device;
:class:`lstmjax.parallel.DataParallel` implements the same interface for ``jax.pmap``, ``jax.jit``
over a device mesh, and several processes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from lstmjax.training.state import Batch
from lstmjax.training.steps import step_key, train_step

__all__ = ["OneDevice", "Placement", "StateStep", "copy_tree", "keyed", "num_rows"]

StateStep = Callable[[Any, Batch], tuple[Any, dict[str, Any]]]
"""``step(state, batch) -> (state, metric sums)``: a step that draws its own key from the state."""


class Placement(Protocol):
    """What the training loop needs from where its steps run (see the module doc)."""

    processes: int  # processes taking part; each feeds its own part of every global batch

    def put_state(self, state): ...  # the state where the step runs (a copy: steps donate it)

    def get_state(self, state): ...  # an ordinary state back

    def put_batch(self, batch: Batch): ...  # this process's host batch where the step runs

    def train_step(self, step: StateStep | None = None) -> StateStep: ...  # compiled for this layout

    def eval_step(self, step: Callable[[Any, Batch], dict]) -> Callable[[Any, Batch], dict]: ...

    def get_metrics(self, metrics) -> dict: ...  # summed metrics as host NumPy values

    def plan(self, dataset, batch_size: int, max_length: int | None) -> dict[str, Any]: ...  # batches() kwargs


def num_rows(dataset) -> int:
    """Examples in an encoded split: a ``datasets.Dataset`` or a dict of lists.

    Example:
      >>> num_rows({"token_ids": [[1], [2, 3]], "label": [0, 1]})
      2
    """
    return dataset.num_rows if hasattr(dataset, "num_rows") else len(dataset["label"])


def _copy(x):
    """A fresh buffer with ``x``'s value (typed PRNG keys included)."""
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(jnp.copy(jax.random.key_data(x)), impl=jax.random.key_impl(x))
    return jnp.array(x, copy=True)


def copy_tree(tree):
    """A copy of every array of ``tree`` in fresh buffers, complete when this returns.

    A step that donates its state frees the state's buffers; the caller's state must survive
    that, so the loop hands the step a copy.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> t = {"w": jnp.ones(2), "rng": jax.random.key(0)}
      >>> c = copy_tree(t)
      >>> c["w"] is t["w"], bool((c["w"] == t["w"]).all())
      (False, True)
    """
    return jax.block_until_ready(jax.tree.map(_copy, tree))


@functools.cache
def keyed(step: Callable) -> StateStep:
    """``step(state, batch, rng)`` as ``step(state, batch)`` with ``rng = step_key(state)``.

    The same function for the same ``step`` (cached), so a compiled step is reused.

    Example:
      >>> from lstmjax.training.steps import train_step
      >>> keyed(train_step) is keyed(train_step)
      True
    """

    def run(state, batch):
        return step(state, batch, step_key(state))

    run.__name__ = getattr(step, "__name__", "step")
    return run


class OneDevice:
    """The default placement: steps ``jax.jit``-compiled for JAX's default device, one process.

    Example:
      >>> import jax, numpy as np
      >>> from lstmjax import TextClassifier, create_train_state, make_optimizer
      >>> state = create_train_state(TextClassifier(20, 2, embed_dim=4, hidden_size=4), jax.random.key(0),
      ...                            make_optimizer())
      >>> here = OneDevice()
      >>> batch = {"token_ids": np.ones((2, 3), np.int32), "lengths": np.full(2, 3, np.int32),
      ...          "labels": np.zeros(2, np.int32)}
      >>> s, m = here.train_step()(here.put_state(state), here.put_batch(batch))
      >>> int(here.get_metrics(m)["count"]), int(here.get_state(s).step)
      (2, 1)
    """

    processes = 1

    def put_state(self, state):
        return copy_tree(state)

    def get_state(self, state):
        return state

    def put_batch(self, batch: Batch):
        return jax.tree.map(jnp.asarray, batch)

    def train_step(self, step: StateStep | None = None) -> StateStep:
        return _jit_donating(step or keyed(train_step))

    def eval_step(self, step):
        return _jit(step)

    def get_metrics(self, metrics) -> dict:
        return jax.tree.map(np.asarray, jax.device_get(metrics))

    def plan(self, dataset, batch_size: int, max_length: int | None) -> dict[str, Any]:
        return {"batch_size": batch_size, "num_batches": math.ceil(num_rows(dataset) / batch_size),
                "max_length": max_length}


@functools.cache
def _jit_donating(step):
    return jax.jit(step, donate_argnums=0)


@functools.cache
def _jit(step):
    return jax.jit(step)
