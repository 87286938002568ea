"""Differentially private training (DP-SGD) and a membership-inference attack (document §8.3, §9.3).

DP-SGD (Abadi et al. 2016) bounds what one training example can change in the model: every
example's gradient is clipped to L2 norm ``C`` (``clip_norm``), the clipped gradients are summed,
Gaussian noise of standard deviation ``σ·C`` (``noise_multiplier`` σ) is added, and the sum is
divided by a *fixed* batch size (never by the number of examples actually drawn, which would
depend on the data)::

    g̃ = (Σ_i clip(∇ℓ_i, C) + N(0, σ²C²·I)) / L        L = the expected batch size

The per-example gradients come from ``jax.vmap`` of ``jax.grad`` (:func:`per_example_grads`);
clipping and noise are Optax's ``optax.contrib.differentially_private_aggregate`` (wrapped by
:func:`dp_aggregate` for the fixed denominator), chained in front of Adam by
:func:`make_dp_optimizer`. :func:`dp_train_step` has the signature and metrics of
:func:`lstmjax.train.train_step`; padded filler rows (``mask`` False) contribute a zero gradient
and count for nothing.

**Sampling and accounting.** How batches are drawn decides which privacy analysis applies:

- *Poisson sampling* (:func:`poisson_batches`): every step includes each example independently
  with probability ``q = L / N``. The accountant is ``PoissonSampledDpEvent(q, GaussianDpEvent(σ))``
  composed over the steps, and sampling *amplifies* privacy (ε shrinks roughly with ``q``). This
  is what :func:`epsilon` computes and what ``lstmjax train --dp-noise-multiplier`` uses.
- *Shuffled fixed-size batches* (:func:`lstmjax.batching.batches`): each example is in exactly
  one step per epoch. Accounting them as Poisson is a common but optimistic shortcut (Chua et al.
  2024, "How private are DP-SGD implementations?"). A bound without amplification, for
  neighbouring datasets in which one example is replaced by one that contributes nothing (as a
  masked filler row does), treats each epoch as one Gaussian mechanism of sensitivity ``C``:
  ``epsilon(σ, sample_rate=1.0, steps=epochs, δ)``. It assumes the batches are cut from a
  shuffle that does not depend on the data (not from length-sorted windows).

ε is spent at a given δ (choose δ well below ``1/N``); it comes from Google's ``dp_accounting``
(RDP by default, or privacy-loss distributions, ``accountant="pld"``, which is tighter).

**Membership inference** (Yeom et al. 2018): a model that overfits has lower loss on its
training examples; an attacker who guesses "member" when the loss is below a threshold tells
members from non-members. :func:`membership_attack` scores that attack by its ROC AUC
(0.5 = guessing). DP bounds every such attack.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lstmjax.train import Batch, TrainState, _mask, _standard_promotion, example_keys, make_optimizer

__all__ = [
    "dp_aggregate",
    "dp_train_step",
    "epsilon",
    "make_dp_optimizer",
    "membership_attack",
    "noise_multiplier_for_epsilon",
    "per_example_grads",
    "per_example_losses",
    "poisson_batches",
    "roc_auc",
]


# --------------------------------------------------------------------------- the optimizer


def dp_aggregate(clip_norm: float, noise_multiplier: float, key: jax.Array, *,
                 batch_size: int) -> optax.GradientTransformation:
    """Clip per-example gradients, sum, add Gaussian noise, divide by a fixed ``batch_size``.

    Optax's ``optax.contrib.differentially_private_aggregate`` does the clipping and the noise
    but divides by the leading (batch) axis of its input. Batches here carry padded filler
    rows (and Poisson batches vary in size), so that axis is not the right denominator: this
    wrapper rescales Optax's result to ``(Σ clip(g_i) + noise) / batch_size``, a constant that
    does not depend on the data.

    Args:
      clip_norm: ``C``, the bound on each example's gradient (global L2 norm over all leaves);
        ``float("inf")`` disables clipping.
      noise_multiplier: ``σ``; the noise standard deviation is ``σ·C`` (0: no noise).
      key: the noise key (kept in the optimizer state, split every step).
      batch_size: the denominator ``L`` (the expected batch size).

    Returns:
      A transformation whose ``update`` takes per-example updates (every leaf
      ``<float32>[batch, *param_shape]``) and returns ``<float32>[*param_shape]`` leaves.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> tx = dp_aggregate(1.0, 0.0, jax.random.key(0), batch_size=4)
      >>> g = {"w": jnp.array([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])}   # norms 5, 0.5 and a filler row
      >>> out, _ = tx.update(g, tx.init({"w": jnp.zeros(2)}))
      >>> [round(v, 6) for v in out["w"].tolist()]    # (0.2 * [3, 4] + [0.3, 0.4]) / 4
      [0.225, 0.3]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    _check_dp_args(clip_norm, noise_multiplier)
    if math.isinf(clip_norm):
        if noise_multiplier:
            raise ValueError("noise_multiplier must be 0 when clip_norm is infinite (the noise would be infinite)")
        # Optax sets the noise scale to clip * multiplier, and inf * 0 is NaN: the largest float
        # clips nothing and keeps the noise at zero.
        clip_norm = float(np.finfo(np.float32).max)
    inner = optax.contrib.differentially_private_aggregate(clip_norm, noise_multiplier, key)

    def update(updates, state, params=None):
        rows = jax.tree.leaves(updates)[0].shape[0]  # Optax divided by this
        aggregated, state = inner.update(updates, state, params)
        return jax.tree.map(lambda g: g * jnp.asarray(rows / batch_size, g.dtype), aggregated), state

    return optax.GradientTransformation(inner.init, update)


def _check_dp_args(clip_norm: float, noise_multiplier: float) -> None:
    if not clip_norm > 0:
        raise ValueError(f"clip_norm must be positive (float('inf') to disable clipping); got {clip_norm}")
    if not (noise_multiplier >= 0 and math.isfinite(noise_multiplier)):
        raise ValueError(f"noise_multiplier must be a finite number >= 0; got {noise_multiplier}")


def make_dp_optimizer(name: str = "adam", learning_rate: float | optax.Schedule = 1e-3, *, clip_norm: float,
                      noise_multiplier: float, batch_size: int, key: jax.Array,
                      weight_decay: float = 0.0) -> optax.GradientTransformation:
    """DP-SGD's aggregation (:func:`dp_aggregate`) chained in front of an optimizer (Adam by default).

    The result takes *per-example* gradients (leading batch axis), as :func:`dp_train_step`
    gives it; it runs under standard dtype promotion like :func:`lstmjax.train.make_optimizer`.

    Args:
      name, learning_rate, weight_decay: as :func:`lstmjax.train.make_optimizer`.
      clip_norm, noise_multiplier, batch_size, key: as :func:`dp_aggregate`.

    Returns:
      An ``optax.GradientTransformation``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> tx = make_dp_optimizer("sgd", 0.1, clip_norm=1.0, noise_multiplier=0.0, batch_size=2,
      ...                        key=jax.random.key(0))
      >>> params = {"w": jnp.zeros(2)}
      >>> per_example = {"w": jnp.array([[6.0, 8.0], [0.0, 1.0]])}   # norms 10 and 1
      >>> updates, _ = tx.update(per_example, tx.init(params), params)
      >>> [round(v, 4) for v in updates["w"].tolist()]   # -0.1 * ([0.6, 0.8] + [0, 1]) / 2
      [-0.03, -0.09]
    """
    return _standard_promotion(optax.chain(
        dp_aggregate(clip_norm, noise_multiplier, key, batch_size=batch_size),
        make_optimizer(name, learning_rate, weight_decay=weight_decay),
    ))


# --------------------------------------------------------------------------- the step


def per_example_grads(state: TrainState, batch: Batch, rng: jax.Array) -> tuple[Any, jax.Array, jax.Array]:
    """Each example's gradient of its own cross-entropy, by ``jax.vmap`` over ``jax.grad``.

    Args:
      state: a :class:`~lstmjax.train.TrainState`.
      batch: ``token_ids <int32>[batch, time]``, ``lengths <int32>[batch]``, ``labels
        <int32>[batch]``, optional ``mask <bool>[batch]``.
      rng: the step's dropout key (one key per example is folded from it).

    Returns:
      ``(grads, losses, logits)``: ``grads`` is the params pytree with a leading batch axis
      (``<float32>[batch, *param_shape]``), zero for rows with ``mask`` False; ``losses
      <float32>[batch]`` (0 for masked rows); ``logits <float32>[batch, classes]``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from lstmjax import TextClassifier, create_train_state, make_optimizer
      >>> state = create_train_state(TextClassifier(20, 2, embed_dim=4, hidden_size=4),
      ...                            jax.random.key(0), make_optimizer())
      >>> batch = {"token_ids": jnp.array([[3, 4], [5, 0]], jnp.int32), "lengths": jnp.array([2, 1], jnp.int32),
      ...          "labels": jnp.array([0, 1], jnp.int32), "mask": jnp.array([True, False])}
      >>> grads, losses, _ = jax.jit(per_example_grads)(state, batch, jax.random.key(1))
      >>> grads["dense"]["kernel"].shape, float(jnp.abs(grads["dense"]["kernel"][1]).max())
      ((2, 4, 2), 0.0)
    """
    mask = _mask(batch)
    keys = example_keys(rng, batch["labels"].shape[0])

    def one(params, ids, length, label, real, key):  # one example: (T,), (), (), (), key
        def loss_fn(p):
            logits = state.apply_fn({"params": p}, ids[None], length[None], deterministic=False,
                                    rngs={"dropout": key})[0]  # (C,)
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, label)
            return jnp.where(real, loss, 0.0), logits

        (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        return grads, logits, loss

    grads, logits, losses = jax.vmap(one, in_axes=(None, 0, 0, 0, 0, 0))(
        state.params, batch["token_ids"], batch["lengths"], batch["labels"], mask, keys)
    return grads, losses, logits


def dp_train_step(state: TrainState, batch: Batch, rng: jax.Array, *,
                  axis_name: str | None = None) -> tuple[TrainState, dict[str, jax.Array]]:
    """One DP-SGD step: per-example gradients → the state's DP optimizer (clip, noise, Adam).

    The same signature and metrics as :func:`lstmjax.train.train_step`; ``state.tx`` must take
    per-example gradients (:func:`make_dp_optimizer`). Filler rows (``mask`` False) give zero
    gradients, so they neither move the parameters nor use privacy budget; the noise key lives
    in the optimizer state. Runs on one device or under ``jax.jit`` over a mesh (the batch axis
    may be sharded); not under ``pmap``, where each device would add its own noise.

    Args:
      state: a :class:`~lstmjax.train.TrainState` whose ``tx`` is a DP optimizer.
      batch: as for :func:`lstmjax.train.train_step`.
      rng: this step's dropout key.
      axis_name: must be ``None``.

    Returns:
      ``(new_state, {"loss_sum", "correct", "count"})``, sums over the batch's real examples.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from lstmjax import TextClassifier, create_train_state
      >>> tx = make_dp_optimizer("adam", 1e-2, clip_norm=1.0, noise_multiplier=1.1, batch_size=4,
      ...                        key=jax.random.key(7))
      >>> state = create_train_state(TextClassifier(20, 2, embed_dim=8, hidden_size=8), jax.random.key(0), tx)
      >>> batch = {"token_ids": jnp.array([[3, 4, 0], [5, 0, 0], [0, 0, 0], [0, 0, 0]], jnp.int32),
      ...          "lengths": jnp.array([2, 1, 0, 0], jnp.int32), "labels": jnp.array([0, 1, 0, 0], jnp.int32),
      ...          "mask": jnp.array([True, True, False, False])}    # two real examples, two filler rows
      >>> state, m = jax.jit(dp_train_step)(state, batch, jax.random.key(1))
      >>> int(state.step), int(m["count"]), bool(m["loss_sum"] > 0)
      (1, 2, True)
    """
    if axis_name is not None:
        raise ValueError("DP training runs on one device or with parallel='mesh', not under pmap "
                         "(each device would add its own noise)")
    mask = _mask(batch)
    grads, losses, logits = per_example_grads(state, batch, rng)
    state = state.apply_gradients(grads=grads)
    metrics = {
        "loss_sum": jnp.sum(losses),
        "correct": jnp.sum((jnp.argmax(logits, -1) == batch["labels"]) & mask, dtype=jnp.int32),
        "count": jnp.sum(mask.astype(jnp.int32)),
    }
    return state, metrics


# --------------------------------------------------------------------------- sampling


def poisson_batches(dataset, sample_rate: float, num_batches: int, *, seed: int = 0, epoch: int = 0,
                    max_length: int | None = None, pad_to: int | None = None) -> Iterator[Batch]:
    """Poisson-sampled batches: each of ``num_batches`` steps takes every example with probability ``q``.

    The batch size varies (binomial, mean ``q·N``); each batch is padded with filler rows
    (``mask`` False) to a multiple of ``pad_to`` so that few shapes are compiled. No example is
    ever dropped to fit a size (that would break the analysis); a step that draws nobody is
    an all-filler batch, which still adds noise. The draws come from
    ``numpy.random.default_rng([seed, epoch])``.

    Args:
      dataset: an encoded split (``token_ids``, ``label``), a ``Dataset`` or a dict of lists.
      sample_rate: ``q`` in (0, 1].
      num_batches: steps to draw (e.g. ``round(1 / q)`` for one epoch in expectation).
      seed, epoch: the random stream.
      max_length: truncate longer texts (default: the longest).
      pad_to: pad batch sizes to a multiple of this (default: the expected batch size plus three
        standard deviations, ``⌈qN + 3√(qN(1−q))⌉``, so nearly every batch has one shape).

    Yields:
      Batches as :func:`lstmjax.batching.batches`: ``token_ids <int32>[b, time]``, ``lengths``,
      ``labels <int32>[b]``, ``mask <bool>[b]``, ``b`` a multiple of ``pad_to``.

    Example:
      >>> data = {"token_ids": [[2, 3]] * 100, "label": [0, 1] * 50}
      >>> out = list(poisson_batches(data, 0.1, 50, seed=0))
      >>> len(out), {b["mask"].shape[0] for b in out}     # padded to ⌈10 + 3·3⌉ = 19 rows
      (50, {19})
      >>> 8 < sum(int(b["mask"].sum()) for b in out) / 50 < 12     # about q·N = 10 per batch
      True
    """
    from lstmjax.batching import _make_batch, _Plan, _ragged, default_length_buckets

    if not 0 < sample_rate <= 1:
        raise ValueError(f"sample_rate must be in (0, 1]; got {sample_rate}")
    if num_batches < 0:
        raise ValueError(f"num_batches must be >= 0; got {num_batches}")
    data = _ragged(dataset)
    n = len(data.labels)
    if n == 0:
        raise ValueError("the dataset is empty")
    if max_length is None:
        max_length = max(int(data.lengths.max()), 1)
    pad_to = pad_to or max(1, math.ceil(sample_rate * n + 3 * math.sqrt(n * sample_rate * (1 - sample_rate))))
    buckets = default_length_buckets(max_length)
    rng = np.random.default_rng([seed, epoch])
    for _ in range(num_batches):
        rows = np.flatnonzero(rng.random(n) < sample_rate)
        size = max(pad_to, -(-len(rows) // pad_to) * pad_to)
        yield _make_batch(data, rows, _Plan(size, max_length, buckets, "post", False, None))


# --------------------------------------------------------------------------- accounting


def _accountant(kind: str):
    import dp_accounting

    if kind == "rdp":
        return dp_accounting.rdp.RdpAccountant()
    if kind == "pld":
        return dp_accounting.pld.PLDAccountant()
    raise ValueError(f"accountant must be 'rdp' or 'pld'; got {kind!r}")


@contextlib.contextmanager
def _quiet_absl():
    """The RDP accountant logs a warning for every Rényi order whose series does not converge
    (small orders at small σ) and leaves that order out; the ε from the other orders stands."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _event(noise_multiplier: float, sample_rate: float, steps: int):
    import dp_accounting

    gaussian = dp_accounting.GaussianDpEvent(noise_multiplier)
    step = gaussian if sample_rate == 1.0 else dp_accounting.PoissonSampledDpEvent(sample_rate, gaussian)
    return dp_accounting.SelfComposedDpEvent(step, steps)


def epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float, *,
            accountant: str = "rdp") -> float:
    """The ε spent by ``steps`` DP-SGD steps with Poisson sampling rate ``q``, at ``δ``.

    The mechanism is ``PoissonSampledDpEvent(q, GaussianDpEvent(σ))`` composed ``steps`` times
    (add/remove-one neighbouring datasets), accounted by ``dp_accounting``. With
    ``sample_rate=1.0`` each step is a plain Gaussian mechanism: pass ``steps=epochs`` to
    bound shuffled fixed-size batches without amplification (see the module doc).

    Args:
      noise_multiplier: ``σ`` (0 gives ``inf``).
      sample_rate: ``q = L / N`` in (0, 1].
      steps: number of steps (>= 0).
      delta: ``δ`` in (0, 1).
      accountant: ``"rdp"`` (Rényi DP, Mironov 2017) or ``"pld"`` (privacy-loss distributions).

    Returns:
      ε as a float (``0.0`` for no steps).

    Example:
      >>> e1, e2 = epsilon(1.1, 0.01, 1000, 1e-5), epsilon(1.1, 0.01, 2000, 1e-5)
      >>> 1.0 < e1 < e2 < 3.0     # more steps spend more privacy
      True
    """
    if not 0 < sample_rate <= 1:
        raise ValueError(f"sample_rate must be in (0, 1]; got {sample_rate}")
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1); got {delta}")
    if steps < 0 or int(steps) != steps:
        raise ValueError(f"steps must be a whole number >= 0; got {steps}")
    if not noise_multiplier >= 0:
        raise ValueError(f"noise_multiplier must be >= 0; got {noise_multiplier}")
    if steps == 0:
        return 0.0
    if noise_multiplier == 0:
        return math.inf
    acc = _accountant(accountant)
    with _quiet_absl():
        acc.compose(_event(noise_multiplier, sample_rate, int(steps)))
        return float(acc.get_epsilon(delta))


def noise_multiplier_for_epsilon(target_epsilon: float, sample_rate: float, steps: int, delta: float, *,
                                 accountant: str = "rdp", tol: float = 1e-3) -> float:
    """The smallest noise multiplier ``σ`` whose :func:`epsilon` is at most ``target_epsilon``.

    Uses ``dp_accounting.calibrate_dp_mechanism`` (a bracketing search over ``σ``).

    Args:
      target_epsilon: the privacy budget ε (> 0).
      sample_rate, steps, delta, accountant: as :func:`epsilon`.
      tol: tolerance on ``σ``.

    Returns:
      ``σ`` as a float.

    Example:
      >>> sigma = noise_multiplier_for_epsilon(2.0, 0.01, 1000, 1e-5)
      >>> epsilon(sigma, 0.01, 1000, 1e-5) <= 2.0 < epsilon(sigma - 0.01, 0.01, 1000, 1e-5)
      True
    """
    import dp_accounting

    if not target_epsilon > 0:
        raise ValueError(f"target_epsilon must be positive; got {target_epsilon}")
    epsilon(1.0, sample_rate, steps, delta, accountant=accountant)  # validates the arguments
    with _quiet_absl():
        sigma = dp_accounting.calibrate_dp_mechanism(
            lambda: _accountant(accountant), lambda s: _event(s, sample_rate, int(steps)), target_epsilon, delta,
            dp_accounting.LowerEndpointAndGuess(1e-3, 1.0), tol=tol)
    # calibrate returns a value within tol of the boundary: step up until the budget holds.
    while epsilon(sigma, sample_rate, steps, delta, accountant=accountant) > target_epsilon:
        sigma += tol
    return float(sigma)


# --------------------------------------------------------------------------- membership inference


def roc_auc(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """Area under the ROC curve: the probability that a random positive scores above a random negative.

    Computed from ranks (the Mann–Whitney U statistic), ties counting one half, as
    ``sklearn.metrics.roc_auc_score``.

    Args:
      scores: ``<float>[n]``, higher = more likely positive.
      labels: ``<int or bool>[n]``, 1/True for positives.

    Returns:
      The AUC in [0, 1].

    Example:
      >>> roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
      0.75
    """
    scores = np.asarray(scores, np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if scores.shape != labels.shape:
        raise ValueError(f"scores and labels differ in length: {scores.shape[0]} vs {labels.shape[0]}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 0/1; got values {sorted(set(labels.tolist()))[:5]}")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    positive = labels.astype(bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("the AUC needs at least one positive and one negative example")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), np.float64)
    sorted_scores = scores[order]
    # average ranks (1-based) over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def per_example_losses(state: TrainState, dataset, *, batch_size: int = 256,
                       max_length: int | None = None) -> np.ndarray:
    """Each example's cross-entropy under the model (dropout off), in the dataset's order.

    Args:
      state: a :class:`~lstmjax.train.TrainState` (or anything with ``apply_fn`` and ``params``).
      dataset: an encoded split (``token_ids``, ``label``) or a dict of lists.
      batch_size: evaluation batch size.
      max_length: truncate longer texts (as in training).

    Returns:
      ``<float32>[n]``.

    Example:
      >>> import jax
      >>> from lstmjax import TextClassifier, create_train_state, make_optimizer
      >>> state = create_train_state(TextClassifier(10, 2, embed_dim=4, hidden_size=4),
      ...                            jax.random.key(0), make_optimizer())
      >>> per_example_losses(state, {"token_ids": [[2, 3], [4], [5, 6, 7]], "label": [0, 1, 1]}, batch_size=2).shape
      (3,)
    """
    from lstmjax.batching import batches

    out = [np.asarray(_losses(state, batch))[batch["mask"]]
           for batch in batches(dataset, batch_size, max_length=max_length)]
    return np.concatenate(out) if out else np.zeros(0, np.float32)


@jax.jit
def _losses(state: TrainState, batch: Batch) -> jax.Array:
    logits = state.apply_fn({"params": state.params}, batch["token_ids"], batch["lengths"], deterministic=True)
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch["labels"])  # (B,)


def membership_attack(member_losses: Sequence[float] | np.ndarray,
                      nonmember_losses: Sequence[float] | np.ndarray) -> dict[str, float]:
    """The loss-threshold membership-inference attack (Yeom et al. 2018), scored.

    The attacker calls an example a training member when its loss is below a threshold; the
    score is ``-loss``. Reports the attack's ROC AUC over all thresholds, the best accuracy a
    single threshold reaches on these examples (balanced: members and non-members weighted
    equally) and the membership advantage ``TPR − FPR`` at that threshold (0: no leak).

    Args:
      member_losses: ``<float>[m]`` per-example losses of training examples
        (:func:`per_example_losses`).
      nonmember_losses: ``<float>[k]`` per-example losses of held-out examples.

    Returns:
      ``{"auc", "advantage", "balanced_accuracy", "threshold", "members", "nonmembers"}``.

    Example:
      >>> r = membership_attack([0.01, 0.02, 0.5], [0.4, 0.9, 1.2])
      >>> round(r["auc"], 4), round(r["advantage"], 4)
      (0.8889, 0.6667)
      >>> membership_attack([0.01, 0.02, 0.3], [0.4, 0.9, 1.2])["threshold"]   # members below, the rest above
      0.3
    """
    members = np.asarray(member_losses, np.float64).reshape(-1)
    nonmembers = np.asarray(nonmember_losses, np.float64).reshape(-1)
    losses = np.concatenate([members, nonmembers])
    labels = np.concatenate([np.ones(len(members), np.int64), np.zeros(len(nonmembers), np.int64)])
    auc = roc_auc(-losses, labels)
    thresholds = np.unique(losses)
    tpr = (members[None, :] <= thresholds[:, None]).mean(1)  # (thresholds,)
    fpr = (nonmembers[None, :] <= thresholds[:, None]).mean(1)
    best = int(np.argmax(tpr - fpr))
    return {
        "auc": auc,
        "advantage": float(tpr[best] - fpr[best]),
        "balanced_accuracy": float((tpr[best] + 1 - fpr[best]) / 2),
        "threshold": float(thresholds[best]),
        "members": len(members),
        "nonmembers": len(nonmembers),
    }
