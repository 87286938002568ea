r"""Magnitude pruning (document §8.2: model compression).

Everything here is a pure function of a parameter pytree (the ``params`` of a
:class:`lstmjax.TextClassifier`: ``{"embedding": {"embedding"}, "recurrent": {"layer_0_forward":
{"W_x", "W_h", "b"}}, "dense": {"kernel", "bias"}}``), or an ``optax`` transformation.

:func:`magnitude_masks` keeps the largest-magnitude weights and returns a *mask* pytree shaped
like the params (``<bool>``, ``True`` = keep). By default only weight matrices are pruned
(``ndim >= 2``: the embedding, ``W_x``, ``W_h``, the dense ``kernel``); biases keep an all-True
mask. ``scope="global"`` ranks all prunable weights together (layers end up with different
sparsities); ``scope="per_layer"`` prunes each matrix to the same fraction. The number pruned is
exact: ``round(sparsity * n)`` (per matrix, or over all of them), ties broken by position (the
earlier weight in row-major order goes first), so the masks are deterministic.

Pruned weights are kept at zero during further training by :func:`keep_pruned_zero`, an
``optax`` transformation chained *after* the optimizer that zeroes the updates of pruned weights::

    tx = optax.chain(make_optimizer("adam"), keep_pruned_zero(masks))

Gradual pruning (Zhu & Gupta, 2017, "To prune, or not to prune") raises the sparsity along
:func:`polynomial_sparsity_schedule`; :func:`prune_step` recomputes the masks at the current
step, zeroes the newly pruned weights and writes the masks into the optimizer state;
:func:`gradual_pruning` does the same from inside the optimizer (an ``optax`` transformation), so
an unchanged training loop prunes. Once pruned, a weight stays pruned. :func:`sparsity` *measures* the fraction of zeros (it does not trust the
masks).
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lstmjax.nn.params import Include, is_weight_matrix, path_name

__all__ = [
    "GradualPruningState",
    "KeepPrunedZeroState",
    "apply_masks",
    "gradual_pruning",
    "keep_pruned_zero",
    "magnitude_masks",
    "polynomial_sparsity_schedule",
    "prune_step",
    "sparsity",
]

Params = Any  # a pytree of arrays
Masks = Any  # a pytree of <bool> arrays shaped like Params
Scope = Literal["global", "per_layer"]


# --------------------------------------------------------------------------------------------- helpers


def _check_sparsity(value) -> None:
    """Raise ``ValueError`` for a concrete sparsity outside ``[0, 1)`` (traced values pass)."""
    if isinstance(value, jax.core.Tracer):
        return
    v = float(value)
    if not (0.0 <= v < 1.0) or math.isnan(v):
        raise ValueError(f"sparsity must be in [0, 1); got {value!r}")


def _num_pruned(s, n: int):
    """``round(s * n)``: exact in Python for a concrete ``s``, else ``<int32>[]``."""
    if isinstance(s, jax.core.Tracer):
        return jnp.round(jnp.asarray(s, jnp.float32) * jnp.float32(n)).astype(jnp.int32)
    return int(round(float(s) * n))


def _keep_largest(scores: jax.Array, k) -> jax.Array:
    """``<bool>`` like ``scores`` (flat): False for the ``k`` smallest, ties to the earlier index."""
    n = scores.shape[0]
    order = jnp.argsort(scores, stable=True)  # (n,) smallest first; stable: earlier index first
    rank_keep = jnp.arange(n, dtype=jnp.int32) >= k  # (n,) by rank
    return jnp.zeros((n,), jnp.bool_).at[order].set(rank_keep)


# --------------------------------------------------------------------------------------------- pruning


def magnitude_masks(params: Params, sparsity: float | jax.Array, *, scope: Scope = "global",
                    include: Include | None = None, masks: Masks | None = None) -> Masks:
    """Masks that prune the smallest-magnitude weights to the given sparsity.

    Args:
      params: a pytree of float arrays.
      sparsity: the fraction of the included weights to prune, in ``[0, 1)``; may be a traced
        ``<float32>[]`` (as from a schedule under ``jit``).
      scope: ``"global"`` (rank all included weights together; ``round(sparsity * n_total)``
        pruned) or ``"per_layer"`` (``round(sparsity * n_leaf)`` pruned in each included leaf).
      include: ``include(path, leaf) -> bool`` picks the leaves to prune (path like
        ``"recurrent/layer_0_forward/W_x"``); default :func:`~lstmjax.nn.params.is_weight_matrix` (matrices only).
      masks: previous masks: weights they prune rank below every kept weight, so they stay pruned
        (gradual pruning with a non-decreasing sparsity).

    Returns:
      A pytree like ``params`` of ``<bool>`` arrays of the same shapes, ``True`` = keep; leaves
      not included are all ``True``.

    Raises:
      ValueError: ``sparsity`` outside ``[0, 1)`` or an unknown ``scope``.

    Example:
      >>> import jax.numpy as jnp
      >>> params = {"w": jnp.array([[0.5, -3.0], [0.1, 2.0]]), "b": jnp.array([0.0, 1.0])}
      >>> m = magnitude_masks(params, 0.5)
      >>> m["w"].tolist(), m["b"].tolist()
      ([[False, True], [False, True]], [True, True])
    """
    _check_sparsity(sparsity)
    if scope not in ("global", "per_layer"):
        raise ValueError(f"scope must be 'global' or 'per_layer'; got {scope!r}")
    include = is_weight_matrix if include is None else include
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    prev = [None] * len(flat) if masks is None else jax.tree.leaves(masks)
    chosen = [i for i, (path, leaf) in enumerate(flat) if include(path_name(path), leaf)]

    def scores(i):  # (n_i,) float32; previously pruned weights score -1, below any |w|
        s = jnp.abs(flat[i][1]).astype(jnp.float32).reshape(-1)
        return s if prev[i] is None else jnp.where(prev[i].reshape(-1), s, jnp.float32(-1.0))

    out = [jnp.ones(jnp.shape(leaf), jnp.bool_) for _, leaf in flat]
    if scope == "per_layer":
        for i in chosen:
            keep = _keep_largest(scores(i), _num_pruned(sparsity, flat[i][1].size))
            out[i] = keep.reshape(jnp.shape(flat[i][1]))
    elif chosen:
        sizes = [flat[i][1].size for i in chosen]
        keep = _keep_largest(jnp.concatenate([scores(i) for i in chosen]), _num_pruned(sparsity, sum(sizes)))
        start = 0
        for i, size in zip(chosen, sizes):
            out[i] = keep[start:start + size].reshape(jnp.shape(flat[i][1]))
            start += size
    return jax.tree_util.tree_unflatten(treedef, out)


def apply_masks(params: Params, masks: Masks) -> Params:
    """``params`` with the pruned entries (mask ``False``) set to zero.

    Example:
      >>> import jax.numpy as jnp
      >>> apply_masks({"w": jnp.array([1.0, 2.0])}, {"w": jnp.array([True, False])})["w"].tolist()
      [1.0, 0.0]
    """
    return jax.tree.map(lambda p, m: jnp.where(m, p, jnp.zeros_like(p)), params, masks)


def sparsity(params: Params, *, include: Include | None = None) -> dict[str, Any]:
    """The measured fraction of exact zeros.

    Args:
      params: a pytree of arrays.
      include: the leaves counted in ``"overall"`` (default :func:`~lstmjax.nn.params.is_weight_matrix`, the
        matrices that :func:`magnitude_masks` prunes).

    Returns:
      ``{"overall": float over included leaves, "all": float over every leaf,
      "per_leaf": {path: float}, "zeros": int, "total": int}`` (``zeros`` / ``total`` over the
      included leaves).

    Example:
      >>> import jax.numpy as jnp
      >>> r = sparsity({"w": jnp.array([[0.0, 1.0], [0.0, 0.0]]), "b": jnp.array([1.0, 1.0])})
      >>> r["overall"], r["all"], r["per_leaf"]
      (0.75, 0.5, {'b': 0.0, 'w': 0.75})
    """
    include = is_weight_matrix if include is None else include
    per_leaf, zeros, total, zeros_all, total_all = {}, 0, 0, 0, 0
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        name, size = path_name(path), int(jnp.size(leaf))
        z = int(jnp.sum(leaf == 0))
        per_leaf[name] = z / size if size else 0.0
        zeros_all, total_all = zeros_all + z, total_all + size
        if include(name, leaf):
            zeros, total = zeros + z, total + size
    return {"overall": zeros / total if total else 0.0, "all": zeros_all / total_all if total_all else 0.0,
            "per_leaf": per_leaf, "zeros": zeros, "total": total}


class KeepPrunedZeroState(NamedTuple):
    """State of :func:`keep_pruned_zero`: the current masks (``<bool>`` pytree like the params)."""

    masks: Masks


def keep_pruned_zero(masks: Masks | None = None) -> optax.GradientTransformation:
    """An ``optax`` transformation that zeroes the updates of pruned weights (masked updates).

    Chain it *after* the optimizer, so that nothing the optimizer does (momentum, Adam's moments,
    weight decay) can move a pruned weight: ``optax.chain(make_optimizer(), keep_pruned_zero(m))``.
    The masks live in the optimizer state (:class:`KeepPrunedZeroState`), so :func:`prune_step`
    can replace them under ``jit`` without rebuilding the optimizer. The pruned weights must
    already be zero (:func:`apply_masks`); then they stay exactly zero.

    Args:
      masks: ``<bool>`` pytree like the params (``True`` = train). ``None``: all ``True`` at
        ``init`` (nothing pruned yet; for gradual pruning).

    Example:
      >>> import jax.numpy as jnp, optax
      >>> params = {"w": jnp.array([0.0, 2.0])}
      >>> tx = optax.chain(optax.sgd(0.1), keep_pruned_zero({"w": jnp.array([False, True])}))
      >>> updates, _ = tx.update({"w": jnp.array([1.0, 1.0])}, tx.init(params), params)
      >>> updates["w"].tolist()
      [0.0, -0.10000000149011612]
    """

    def init(params):
        m = jax.tree.map(lambda p: jnp.ones(jnp.shape(p), jnp.bool_), params) if masks is None else masks
        return KeepPrunedZeroState(m)

    def update(updates, state, params=None):
        del params
        updates = jax.tree.map(lambda u, m: jnp.where(m, u, jnp.zeros_like(u)), updates, state.masks)
        return updates, state

    return optax.GradientTransformation(init, update)


def _is_keep_state(x) -> bool:
    return isinstance(x, KeepPrunedZeroState)


def _set_masks(opt_state, masks: Masks):
    """``opt_state`` with every :class:`KeepPrunedZeroState` holding ``masks``."""
    return jax.tree.map(lambda s: KeepPrunedZeroState(masks) if _is_keep_state(s) else s, opt_state,
                        is_leaf=_is_keep_state)


def polynomial_sparsity_schedule(final_sparsity: float, begin_step: int, end_step: int, *,
                                 initial_sparsity: float = 0.0, power: float = 3.0) -> optax.Schedule:
    r"""Zhu & Gupta's (2017) gradual pruning schedule.

    .. math::

        s_t = s_f + (s_i - s_f)\left(1 - \frac{t - t_0}{t_1 - t_0}\right)^{p}
        \quad\text{for } t_0 \le t \le t_1,

    ``s_i`` before ``t_0 = begin_step``, ``s_f`` after ``t_1 = end_step``. Fast at first, when
    there are many redundant weights, slowing down towards the end.

    Args:
      final_sparsity: ``s_f`` in ``[0, 1)``.
      begin_step, end_step: ``t_0 < t_1``.
      initial_sparsity: ``s_i`` in ``[0, 1)``, at most ``s_f``.
      power: ``p`` (3 in the paper).

    Returns:
      ``schedule(step) -> <float32>[]``.

    Example:
      >>> sched = polynomial_sparsity_schedule(0.8, 0, 100)
      >>> [round(float(sched(t)), 4) for t in (0, 50, 100, 200)]
      [0.0, 0.7, 0.8, 0.8]
    """
    _check_sparsity(final_sparsity)
    _check_sparsity(initial_sparsity)
    if initial_sparsity > final_sparsity:
        raise ValueError(f"initial_sparsity {initial_sparsity} must not exceed final_sparsity {final_sparsity}")
    if not end_step > begin_step:
        raise ValueError(f"end_step ({end_step}) must be greater than begin_step ({begin_step})")

    def schedule(step):
        t = jnp.asarray(step).astype(jnp.float32)
        progress = jnp.clip((t - jnp.float32(begin_step)) / jnp.float32(end_step - begin_step), 0.0, 1.0)
        remaining = (jnp.float32(1.0) - progress) ** jnp.float32(power)
        return jnp.float32(final_sparsity) + jnp.float32(initial_sparsity - final_sparsity) * remaining

    return schedule


def prune_step(state, masks: Masks, schedule: optax.Schedule | float, *, scope: Scope = "global",
               include: Include | None = None):
    """One gradual-pruning update: masks for the scheduled sparsity at ``state.step``, applied.

    Weights already pruned by ``masks`` stay pruned. Call it every few training steps (or every
    step: it is cheap and jittable; the sparsity may be traced). The state's optimizer must chain
    :func:`keep_pruned_zero`, whose masks are replaced here.

    Args:
      state: a :class:`lstmjax.TrainState` (or anything with ``step``, ``params``, ``opt_state``
        and ``.replace``).
      masks: the current masks (from :func:`magnitude_masks` or the previous ``prune_step``).
      schedule: ``schedule(step) -> sparsity`` (e.g. :func:`polynomial_sparsity_schedule`) or a
        constant sparsity.
      scope, include: as for :func:`magnitude_masks`.

    Returns:
      ``(state, masks)``: params with the pruned weights zeroed and the optimizer state holding
      the new masks.

    Example:
      >>> import jax
      >>> from lstmjax import TextClassifier, create_train_state, make_optimizer
      >>> import optax
      >>> tx = optax.chain(make_optimizer(), keep_pruned_zero())
      >>> state = create_train_state(TextClassifier(20, 2, embed_dim=8, hidden_size=8), jax.random.key(0), tx)
      >>> masks = magnitude_masks(state.params, 0.0)
      >>> state, masks = jax.jit(prune_step, static_argnums=2)(state, masks, 0.5)
      >>> round(sparsity(state.params)["overall"], 3)
      0.5
    """
    target = schedule(state.step) if callable(schedule) else schedule
    masks = magnitude_masks(state.params, target, scope=scope, include=include, masks=masks)
    state = state.replace(params=apply_masks(state.params, masks), opt_state=_set_masks(state.opt_state, masks))
    return state, masks


class GradualPruningState(NamedTuple):
    """State of :func:`gradual_pruning`: steps taken (``<int32>[]``) and the current masks."""

    count: jax.Array
    masks: Masks


def gradual_pruning(schedule: optax.Schedule | float, *, every: int = 1, scope: Scope = "global",
                    include: Include | None = None) -> optax.GradientTransformation:
    """Gradual magnitude pruning *inside* the optimizer: an ``optax`` transformation.

    Chain it after the optimizer: ``optax.chain(make_optimizer(), gradual_pruning(sched))``.
    At every ``every``-th update (counting from the first, step 0) it computes the masks of the
    scheduled sparsity from the magnitudes the parameters are about to have (``params + updates``),
    keeping earlier prunes pruned; at every update it changes a pruned weight's update to
    ``-w``, so the weight becomes, and stays, exactly zero. Because it lives in the optimizer,
    :func:`lstmjax.training.steps.train_step` and every data-parallel mode prune without knowing it (the
    same as calling :func:`prune_step` between steps, without a host round trip).

    Args:
      schedule: ``schedule(step) -> sparsity`` (:func:`polynomial_sparsity_schedule`) or a constant.
      every: recompute the masks every this many steps (ranking all weights costs a sort).
      scope, include: as for :func:`magnitude_masks`.

    Returns:
      An ``optax.GradientTransformation`` (its ``update`` needs ``params``); the masks are in
      its :class:`GradualPruningState`.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> params = {"w": jnp.array([[0.1, -2.0], [0.5, 3.0]])}
      >>> tx = optax.chain(optax.sgd(0.0), gradual_pruning(0.5))
      >>> updates, _ = tx.update({"w": jnp.ones((2, 2))}, tx.init(params), params)
      >>> optax.apply_updates(params, updates)["w"].tolist()
      [[0.0, -2.0], [0.0, 3.0]]
    """
    if every < 1:
        raise ValueError(f"every must be >= 1; got {every}")
    if not callable(schedule):
        _check_sparsity(schedule)

    def init(params):
        masks = jax.tree.map(lambda p: jnp.ones(jnp.shape(p), jnp.bool_), params)
        return GradualPruningState(jnp.zeros((), jnp.int32), masks)

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("gradual_pruning needs params: call tx.update(grads, state, params)")
        target = schedule(state.count) if callable(schedule) else jnp.float32(schedule)
        ahead = jax.tree.map(lambda p, u: p + u.astype(p.dtype), params, updates)  # the next params

        def recompute(masks):
            return magnitude_masks(ahead, target, scope=scope, include=include, masks=masks)

        masks = jax.lax.cond(state.count % every == 0, recompute, lambda m: m, state.masks)
        updates = jax.tree.map(lambda u, p, m: jnp.where(m, u, -p.astype(u.dtype)), updates, params, masks)
        return updates, GradualPruningState(state.count + 1, masks)

    return optax.GradientTransformation(init, update)


