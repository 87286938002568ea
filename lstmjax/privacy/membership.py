"""Membership inference: does the model give away which examples it was trained on? (document §8.3)

The loss-threshold attack (Yeom et al. 2018): a model that overfits has lower loss on its
training examples; an attacker who guesses "member" when the loss is below a threshold tells
members from non-members. :func:`membership_attack` scores that attack by its ROC AUC (0.5 =
guessing); :func:`per_example_losses` gives the losses it reads. Differential privacy
(:mod:`lstmjax.privacy.dp`) bounds every such attack.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
import optax

from lstmjax.data.batching import batches
from lstmjax.training.state import Batch, TrainState

__all__ = ["membership_attack", "per_example_losses", "roc_auc"]


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
      state: a :class:`~lstmjax.training.TrainState` (or anything with ``apply_fn`` and ``params``).
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
