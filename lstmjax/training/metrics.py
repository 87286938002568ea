"""Classification metrics (document §3.2 step 4): accuracy, precision, recall, F1, confusion matrix.

Everything is derived from one confusion matrix, summed over batches in JAX. A batch's padded
filler examples (``mask == False``) add nothing, so every example of an evaluation set is counted
exactly once however it is batched or sharded. Conventions follow scikit-learn: rows are true
labels, columns predictions; a class with no predictions (or no examples) gets precision (or
recall) 0, as ``zero_division=0``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["classification_report", "confusion_matrix"]


def confusion_matrix(labels: jax.Array, predictions: jax.Array, num_classes: int,
                     mask: jax.Array | None = None) -> jax.Array:
    """Count ``(true, predicted)`` pairs.

    Args:
      labels: ``<int>[batch]`` true labels in ``[0, num_classes)``.
      predictions: ``<int>[batch]`` predicted labels.
      num_classes: ``C``.
      mask: ``<bool>[batch]``, ``False`` for padded filler examples (not counted).

    Returns:
      ``<int32>[C, C]``: entry ``[i, j]`` counts examples of class ``i`` predicted as ``j``.

    Example:
      >>> import jax.numpy as jnp
      >>> confusion_matrix(jnp.array([0, 1, 1, 0]), jnp.array([0, 1, 0, 1]), 2,
      ...                  mask=jnp.array([True, True, True, False])).tolist()
      [[1, 0], [1, 1]]
    """
    true = jax.nn.one_hot(labels, num_classes, dtype=jnp.int32)  # (B, C)
    pred = jax.nn.one_hot(predictions, num_classes, dtype=jnp.int32)  # (B, C)
    if mask is not None:
        true = true * mask.astype(jnp.int32)[:, None]
    return true.T @ pred  # (C, C)


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b != 0)


def classification_report(confusion, label_names: list[str] | None = None) -> dict:
    """Accuracy, and precision, recall and F1 per class and macro/micro/weighted, from a confusion matrix.

    Args:
      confusion: ``<int>[C, C]`` as from :func:`confusion_matrix` (summed over all batches).
      label_names: names for the per-class entries (default: ``"0"``, ``"1"``, ...).

    Returns:
      ``{"accuracy", "precision", "recall", "f1"`` (macro), ``"macro"``, ``"micro"``,
      ``"weighted"`` (dicts of precision/recall/f1), ``"per_class"`` (name → precision, recall,
      f1, support), ``"support"`` (examples counted), ``"confusion_matrix"`` (nested lists)}.

    Example:
      >>> r = classification_report([[3, 1], [2, 4]], ["neg", "pos"])
      >>> round(r["accuracy"], 3), round(r["per_class"]["pos"]["recall"], 3), r["support"]
      (0.7, 0.667, 10)
    """
    cm = np.asarray(confusion, dtype=np.int64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square [C, C]; got shape {cm.shape}")
    names = list(label_names) if label_names is not None else [str(i) for i in range(cm.shape[0])]
    if len(names) != cm.shape[0]:
        raise ValueError(f"{len(names)} label names for a {cm.shape[0]}-class confusion matrix")
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    total = float(cm.sum())
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    micro = float(tp.sum() / total) if total else 0.0  # single-label: micro P = R = F1 = accuracy
    weights = support / total if total else np.zeros_like(support)
    macro = {"precision": float(precision.mean()), "recall": float(recall.mean()), "f1": float(f1.mean())}
    return {
        "accuracy": micro,
        **macro,
        "macro": macro,
        "micro": {"precision": micro, "recall": micro, "f1": micro},
        "weighted": {"precision": float(weights @ precision), "recall": float(weights @ recall),
                     "f1": float(weights @ f1)},
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(names, precision, recall, f1, support)
        },
        "support": int(total),
        "confusion_matrix": cm.tolist(),
    }
