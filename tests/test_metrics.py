"""Metrics against scikit-learn on the same predictions; masking counts every example once."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm

from lstmjax.training.metrics import classification_report, confusion_matrix


@pytest.mark.parametrize("num_classes", [2, 3, 6])
def test_against_sklearn(num_classes):
    rng = np.random.default_rng(num_classes)
    y = rng.integers(0, num_classes, 500)
    p = np.where(rng.random(500) < 0.6, y, rng.integers(0, num_classes, 500))
    if num_classes == 6:
        p[p == 5] = 4  # a class never predicted: precision 0 by zero_division=0
    cm = jax.jit(confusion_matrix, static_argnums=2)(jnp.asarray(y, jnp.int32), jnp.asarray(p, jnp.int32), num_classes)
    labels = list(range(num_classes))
    np.testing.assert_array_equal(cm, skm.confusion_matrix(y, p, labels=labels))
    r = classification_report(cm)
    assert r["accuracy"] == pytest.approx(skm.accuracy_score(y, p), abs=1e-12)
    for avg in ("macro", "micro", "weighted"):
        P, R, F, _ = skm.precision_recall_fscore_support(y, p, labels=labels, average=avg, zero_division=0)
        assert r[avg]["precision"] == pytest.approx(P, abs=1e-12)
        assert r[avg]["recall"] == pytest.approx(R, abs=1e-12)
        assert r[avg]["f1"] == pytest.approx(F, abs=1e-12)
    P, R, F, S = skm.precision_recall_fscore_support(y, p, labels=labels, zero_division=0)
    for i in labels:
        c = r["per_class"][str(i)]
        assert (c["precision"], c["recall"], c["f1"], c["support"]) == pytest.approx((P[i], R[i], F[i], S[i]))
    assert r["f1"] == r["macro"]["f1"]


def test_mask_counts_each_example_once():
    y = jnp.array([0, 1, 2, 1, 0, 0], jnp.int32)
    p = jnp.array([0, 2, 2, 1, 1, 0], jnp.int32)
    mask = jnp.array([True, True, True, True, False, False])
    total = confusion_matrix(y[:3], p[:3], 3) + confusion_matrix(y[3:], p[3:], 3, mask[3:])
    np.testing.assert_array_equal(total, skm.confusion_matrix(y[:4], p[:4], labels=[0, 1, 2]))
    assert classification_report(total)["support"] == 4


def test_bad_input():
    with pytest.raises(ValueError, match="square"):
        classification_report(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="3 label names for a 2-class"):
        classification_report(np.eye(2), ["a", "b", "c"])
    assert classification_report(np.zeros((2, 2)))["accuracy"] == 0.0
