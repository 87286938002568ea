"""L1 and L2 penalties on chosen parameter groups, as a loss term and as an Optax transformation.

Conventions (the penalty a loss gains, and its gradient)::

    L1(w) = l1 · Σ |w|          ∂/∂w = l1 · sign(w)     (sign(0) = 0: the subgradient 0)
    L2(w) = l2 · ½ Σ w²         ∂/∂w = l2 · w           (the ½ makes ``l2`` the decay rate, as
                                                         ``optax.add_decayed_weights``)

A parameter is in a group when ``include(path, leaf)`` is true, ``path`` being its keys joined by
``/`` (``"recurrent/layer_0_forward/W_h"``, ``"dense/kernel"``, ``"embedding/embedding"``;
:mod:`lstmjax.nn.params`). The default group, :func:`penalized`, is the weight matrices
(:func:`lstmjax.nn.params.is_weight_matrix`) except the embedding table: biases are left out,
and so is the embedding, as Keras's ``kernel_regularizer`` / ``recurrent_regularizer`` do (the
embedding has its own ``embeddings_regularizer`` there).

Two ways in, with the same gradients:

* :func:`penalty` is the loss term, for a custom loss (``loss + penalty(params, l2=...)``).
* :func:`add_penalty_gradient` is an ``optax.GradientTransformation`` that adds the penalty's
  gradient to the loss gradient; chain it in front of the optimizer and the unchanged
  :func:`lstmjax.training.train_step` minimises ``loss + penalty`` (the reported ``loss_sum`` stays
  the data loss). Since the gradient is added after the data-parallel sum, it is added once,
  not once per device. This is *coupled* L2 (it passes through Adam's scaling); decoupled weight
  decay is ``make_optimizer("adamw", weight_decay=...)`` (``optax.adamw``).

Example:
  >>> import jax, optax
  >>> from lstmjax import TextClassifier
  >>> from lstmjax import create_train_state
  >>> tx = optax.chain(add_penalty_gradient(l2=1e-4), optax.adam(1e-3))
  >>> state = create_train_state(TextClassifier(20, 2, embed_dim=4, hidden_size=4), jax.random.key(0), tx)
  >>> float(penalty(state.params, l2=1e-4)) > 0
  True
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lstmjax.nn.params import Include, is_weight_matrix, leaves_with_paths, path_name

__all__ = ["add_penalty_gradient", "penalized", "penalty", "penalty_gradient"]


def penalized(path: str, leaf: Any) -> bool:
    """The default group: the weight matrices (:func:`lstmjax.nn.params.is_weight_matrix`) except the embedding.

    Args:
      path: a parameter's keys joined by ``/``.
      leaf: the parameter (its number of axes is read).

    Returns:
      ``True`` for ``W_x``, ``W_h`` and ``kernel``; ``False`` for biases (``b``, ``b_x``,
      ``b_h``, ``bias``) and the embedding table.

    Example:
      >>> import jax.numpy as jnp
      >>> m, v = jnp.zeros((2, 2)), jnp.zeros(2)
      >>> penalized("recurrent/layer_0_forward/W_h", m), penalized("dense/bias", v), penalized("embedding/embedding", m)
      (True, False, False)
    """
    return is_weight_matrix(path, leaf) and path.split("/", 1)[0] != "embedding"


def _check(l1: float, l2: float) -> None:
    if l1 < 0 or l2 < 0:
        raise ValueError(f"penalty strengths must be non-negative; got l1={l1}, l2={l2}")


def penalty(params: Any, *, l1: float = 0.0, l2: float = 0.0, include: Include = penalized) -> jax.Array:
    """The penalty ``l1 · Σ|w| + l2 · ½ Σ w²`` over the parameters ``include`` selects.

    Args:
      params: a parameter pytree (e.g. ``state.params``).
      l1: L1 strength (``>= 0``).
      l2: L2 strength (``>= 0``); note the ½.
      include: ``include(path, leaf) -> bool`` on ``/``-joined paths; default :func:`penalized`.

    Returns:
      ``<float32>[]`` (sums are taken in float32 whatever the parameters' dtype).

    Example:
      >>> import jax.numpy as jnp
      >>> p = {"dense": {"kernel": jnp.array([[1.0, -2.0]]), "bias": jnp.array([5.0])}}
      >>> float(penalty(p, l1=0.1)), float(penalty(p, l2=1.0)), float(penalty(p, l2=1.0, include=lambda path, w: True))
      (0.30000001192092896, 2.5, 15.0)
    """
    _check(l1, l2)
    total = jnp.zeros((), jnp.float32)
    for path, leaf in leaves_with_paths(params):
        if not include(path, leaf):
            continue
        w = jnp.asarray(leaf).astype(jnp.float32)
        if l1:
            total = total + jnp.float32(l1) * jnp.sum(jnp.abs(w))
        if l2:
            total = total + jnp.float32(0.5 * l2) * jnp.sum(w * w)
    return total


def penalty_gradient(params: Any, *, l1: float = 0.0, l2: float = 0.0, include: Include = penalized) -> Any:
    """``∂ penalty / ∂ params`` in closed form: ``l1 · sign(w) + l2 · w`` on included leaves, 0 elsewhere.

    Equals ``jax.grad(penalty)`` (with subgradient 0 at ``w = 0``), without a backward pass.

    Args:
      params: a parameter pytree.
      l1, l2, include: as :func:`penalty`.

    Returns:
      A pytree like ``params`` (same shapes and dtypes).

    Example:
      >>> import jax.numpy as jnp
      >>> g = penalty_gradient({"W_h": jnp.array([[2.0, -1.0, 0.0]])}, l1=0.5, l2=0.1)
      >>> [round(v, 6) for v in g["W_h"][0].tolist()]
      [0.7, -0.6, 0.0]
    """
    _check(l1, l2)

    def grad(path, w):
        if not include(path_name(path), w):
            return jnp.zeros_like(w)
        g = jnp.zeros_like(w)
        if l1:
            g = g + jnp.asarray(l1, w.dtype) * jnp.sign(w)
        if l2:
            g = g + jnp.asarray(l2, w.dtype) * w
        return g

    return jax.tree_util.tree_map_with_path(grad, params)


class PenaltyGradientState(NamedTuple):
    """Stateless: :func:`add_penalty_gradient` keeps nothing between steps."""


def add_penalty_gradient(*, l1: float = 0.0, l2: float = 0.0,
                         include: Include = penalized) -> optax.GradientTransformation:
    """An Optax transformation adding :func:`penalty_gradient` to the updates (the loss gradients).

    Chain it *first*: ``optax.chain(add_penalty_gradient(l2=1e-4), make_optimizer())``; then
    :func:`lstmjax.training.train_step` minimises ``loss + penalty(params, l1=l1, l2=l2)``. With
    ``l1 = l2 = 0`` it is the identity.

    Args:
      l1, l2, include: as :func:`penalty`.

    Returns:
      An ``optax.GradientTransformation`` whose ``update`` needs ``params``.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> tx = optax.chain(add_penalty_gradient(l2=0.5), optax.sgd(1.0))
      >>> params = {"kernel": jnp.array([[2.0]])}
      >>> updates, _ = tx.update({"kernel": jnp.array([[1.0]])}, tx.init(params), params)
      >>> updates["kernel"].tolist()   # -(1 + 0.5 · 2)
      [[-2.0]]
    """
    _check(l1, l2)

    def init(params):
        del params
        return PenaltyGradientState()

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("add_penalty_gradient needs params: call tx.update(grads, state, params)")
        if not (l1 or l2):
            return updates, state
        extra = penalty_gradient(params, l1=l1, l2=l2, include=include)
        return jax.tree.map(lambda u, e: u + e.astype(u.dtype), updates, extra), state

    return optax.GradientTransformation(init, update)
