"""Differentially private training (DP-SGD), and the privacy it spends (document §8.3, §9.3).

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
:func:`lstmjax.training.train_step`; padded filler rows (``mask`` False) contribute a zero gradient
and count for nothing.

**Sampling and accounting.** How batches are drawn decides which privacy analysis applies:

- *Poisson sampling* (:func:`lstmjax.data.poisson_batches`): every step includes each example independently
  with probability ``q = L / N``. The accountant is ``PoissonSampledDpEvent(q, GaussianDpEvent(σ))``
  composed over the steps, and sampling *amplifies* privacy (ε shrinks roughly with ``q``). This
  is what :func:`epsilon` computes and what ``lstmjax train --dp-noise-multiplier`` uses.
- *Shuffled fixed-size batches* (:func:`lstmjax.data.batching.batches`): each example is in exactly
  one step per epoch. Accounting them as Poisson is a common but optimistic shortcut (Chua et al.
  2024, "How private are DP-SGD implementations?"). A bound without amplification, for
  neighbouring datasets in which one example is replaced by one that contributes nothing (as a
  masked filler row does), treats each epoch as one Gaussian mechanism of sensitivity ``C``:
  ``epsilon(σ, sample_rate=1.0, steps=epochs, δ)``. It assumes the batches are cut from a
  shuffle that does not depend on the data (not from length-sorted windows).

ε is spent at a given δ (choose δ well below ``1/N``); it comes from Google's ``dp_accounting``
(RDP by default, or privacy-loss distributions, ``accountant="pld"``, which is tighter).

The membership-inference attack that DP bounds is in :mod:`lstmjax.privacy.membership`.
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lstmjax.training.state import Batch, TrainState, make_optimizer, standard_promotion
from lstmjax.training.steps import example_keys, example_mask

__all__ = [
    "dp_aggregate",
    "dp_train_step",
    "epsilon",
    "make_dp_optimizer",
    "noise_multiplier_for_epsilon",
    "per_example_grads",
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
    gives it; it runs under standard dtype promotion like :func:`lstmjax.training.state.make_optimizer`.

    Args:
      name, learning_rate, weight_decay: as :func:`lstmjax.training.state.make_optimizer`.
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
    return standard_promotion(optax.chain(
        dp_aggregate(clip_norm, noise_multiplier, key, batch_size=batch_size),
        make_optimizer(name, learning_rate, weight_decay=weight_decay),
    ))


# --------------------------------------------------------------------------- the step


def per_example_grads(state: TrainState, batch: Batch, rng: jax.Array) -> tuple[Any, jax.Array, jax.Array]:
    """Each example's gradient of its own cross-entropy, by ``jax.vmap`` over ``jax.grad``.

    Args:
      state: a :class:`~lstmjax.training.state.TrainState`.
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
      >>> from lstmjax import pad_sequences
      >>> model = TextClassifier(20, 2, embed_dim=4, hidden_size=4)
      >>> state = create_train_state(model, jax.random.key(0), make_optimizer())
      >>> ids, lengths = pad_sequences([[3, 4], [5]])
      >>> batch = dict(token_ids=ids, lengths=lengths, labels=jnp.array([0, 1]), mask=jnp.array([True, False]))
      >>> grads, losses, _ = jax.jit(per_example_grads)(state, batch, jax.random.key(1))
      >>> grads["dense"]["kernel"].shape, float(jnp.abs(grads["dense"]["kernel"][1]).max())
      ((2, 4, 2), 0.0)
    """
    mask = example_mask(batch)
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


def dp_train_step(state: TrainState, batch: Batch, rng: jax.Array) -> tuple[TrainState, dict[str, jax.Array]]:
    """One DP-SGD step: per-example gradients → the state's DP optimizer (clip, noise, Adam).

    The same signature and metrics as :func:`lstmjax.training.train_step`; ``state.tx`` must take
    per-example gradients (:func:`make_dp_optimizer`). Filler rows (``mask`` False) give zero
    gradients, so they neither move the parameters nor use privacy budget; the noise key lives
    in the optimizer state. Runs on one device or under ``jax.jit`` over a mesh (the batch axis
    may be sharded); not under ``pmap``, where each device would add its own noise.

    Args:
      state: a :class:`~lstmjax.training.state.TrainState` whose ``tx`` is a DP optimizer.
      batch: as for :func:`lstmjax.training.train_step`.
      rng: this step's dropout key.

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
    mask = example_mask(batch)
    grads, losses, logits = per_example_grads(state, batch, rng)
    state = state.apply_gradients(grads=grads)
    metrics = {
        "loss_sum": jnp.sum(losses),
        "correct": jnp.sum((jnp.argmax(logits, -1) == batch["labels"]) & mask, dtype=jnp.int32),
        "count": jnp.sum(mask.astype(jnp.int32)),
    }
    return state, metrics


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


