"""The training state, as one pytree, and the optimizer that updates it (document §3.2 step 3, §2.2).

A :class:`TrainState` holds the parameters, the optimizer state, the step count and the run's
base RNG key; :func:`create_train_state` initialises one from a model, and
:func:`make_optimizer` builds the Optax optimizer by name (Adam by default, as the document's
Keras listing).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

__all__ = ["TrainState", "create_train_state", "make_optimizer", "standard_promotion"]

Batch = dict[str, Any]


class TrainState(train_state.TrainState):
    """Params, optimizer state, step and the run's base RNG key, as one pytree.

    Extends ``flax.training.train_state.TrainState`` (``step``, ``apply_fn``, ``params``,
    ``tx``, ``opt_state``) with ``rng``: the key each step's dropout key is folded from
    (``jax.random.fold_in(state.rng, state.step)``), kept so a resumed run draws the same keys.

    Example:
      >>> import jax
      >>> from lstmjax import TextClassifier
      >>> state = create_train_state(TextClassifier(10, 2, embed_dim=4, hidden_size=4),
      ...                            jax.random.key(0), make_optimizer())
      >>> leaves = jax.tree.leaves(state)   # a pytree: params, optimizer state, step and key
      >>> int(state.step), isinstance(state, TrainState), len(leaves) > 10
      (0, True, True)
    """

    rng: jax.Array


def make_optimizer(name: str = "adam", learning_rate: float | optax.Schedule = 1e-3, *,
                   clip_norm: float | None = None, weight_decay: float = 0.0,
                   momentum: float = 0.9) -> optax.GradientTransformation:
    """An Optax optimizer by name, with optional global-norm gradient clipping chained in front.

    Args:
      name: ``"adam"`` (default, lr 1e-3 as Keras), ``"adamw"``, ``"sgd"`` or ``"momentum"``.
      learning_rate: a float or an ``optax`` schedule (e.g. ``optax.cosine_decay_schedule``).
      clip_norm: clip gradients to this global norm (``optax.clip_by_global_norm``).
      weight_decay: decoupled weight decay for ``"adamw"``.
      momentum: momentum for ``"momentum"``.

    Returns:
      An ``optax.GradientTransformation`` (run under :func:`standard_promotion`).

    Example:
      >>> import jax.numpy as jnp
      >>> tx = make_optimizer("sgd", 0.1, clip_norm=1.0)
      >>> params = {"w": jnp.array([1.0, 2.0])}
      >>> updates, _ = tx.update({"w": jnp.array([3.0, 4.0])}, tx.init(params), params)
      >>> [round(v, 6) for v in updates["w"].tolist()]   # clipped to norm 1, then scaled by -0.1
      [-0.06, -0.08]
    """
    optimizers: dict[str, Callable[[], optax.GradientTransformation]] = {
        "adam": lambda: optax.adam(learning_rate),
        "adamw": lambda: optax.adamw(learning_rate, weight_decay=weight_decay),
        "sgd": lambda: optax.sgd(learning_rate),
        "momentum": lambda: optax.sgd(learning_rate, momentum=momentum),
    }
    if name not in optimizers:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {sorted(optimizers)}")
    if weight_decay and name != "adamw":
        raise ValueError(f"weight_decay applies to 'adamw', not {name!r}")
    tx = optimizers[name]()
    if clip_norm is not None:
        if clip_norm <= 0:
            raise ValueError(f"clip_norm must be positive; got {clip_norm}")
        tx = optax.chain(optax.clip_by_global_norm(clip_norm), tx)
    return standard_promotion(tx)


def standard_promotion(tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """``tx`` run under JAX's standard dtype promotion.

    Optax mixes Python floats with ``int32`` step counts (``decay ** count`` in Adam's bias
    correction), which ``jax_numpy_dtype_promotion="strict"`` rejects. lstmjax's tests run
    strict to catch implicit promotions in its own code; the optimizer, which is Optax's, is
    traced with the standard rules.

    Args:
      tx: any ``optax.GradientTransformation``.

    Returns:
      The same transformation, its ``init`` and ``update`` under standard promotion.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> tx = standard_promotion(optax.adam(1e-3))
      >>> with jax.numpy_dtype_promotion("strict"):
      ...     updates, _ = tx.update({"w": jnp.ones(2)}, tx.init({"w": jnp.zeros(2)}))
      >>> updates["w"].dtype
      dtype('float32')
    """

    def init(params):
        with jax.numpy_dtype_promotion("standard"):
            return tx.init(params)

    def update(updates, state, params=None):
        with jax.numpy_dtype_promotion("standard"):
            return tx.update(updates, state, params)

    return optax.GradientTransformation(init, update)


def create_train_state(model: nn.Module, rng: jax.Array, tx: optax.GradientTransformation,
                       sample_batch: Batch | None = None) -> TrainState:
    """Initialise the model's parameters and the optimizer state.

    Args:
      model: a Linen module called as ``model(token_ids, lengths, deterministic=...)``, e.g.
        :class:`lstmjax.TextClassifier`.
      rng: a ``jax.random.key``; split into the init key and the run's base key.
      tx: the optimizer.
      sample_batch: a batch to infer shapes from (default: one token, one example).

    Returns:
      A :class:`TrainState` at step 0.

    Example:
      >>> import jax
      >>> from lstmjax import TextClassifier
      >>> state = create_train_state(TextClassifier(50, 2, embed_dim=8, hidden_size=8),
      ...                            jax.random.key(0), make_optimizer())
      >>> int(state.step), sorted(state.params)
      (0, ['dense', 'embedding', 'recurrent'])
    """
    init_rng, run_rng = jax.random.split(rng)
    ids = jnp.ones((1, 1), jnp.int32) if sample_batch is None else jnp.asarray(sample_batch["token_ids"])
    lengths = jnp.full((ids.shape[0],), ids.shape[1], jnp.int32)
    params = model.init(init_rng, ids, lengths)["params"]
    return TrainState.create(apply_fn=model.apply, params=params, tx=tx, rng=run_rng)
