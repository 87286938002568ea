"""The checkers of tutorials 07 and 08 accept right answers and reject typical wrong ones."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lstmjax import course
from lstmjax.compress import magnitude_masks
from lstmjax.data.augment import random_swap


def _adjacent_swap(tokens, n, rng):  # not uniform over pairs
    out = list(tokens)
    if len(out) < 2:
        return out
    for _ in range(n):
        i = int(rng.integers(len(out) - 1))
        out[i], out[i + 1] = out[i + 1], out[i]
    return out


def _folds(labels, k, seed=0):
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    dealt = np.concatenate([rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)])
    fold_of = np.empty(len(labels), np.int64)
    fold_of[dealt] = np.arange(len(labels)) % k
    return [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(k)]


def _unstratified(labels, k, seed=0):
    idx = np.random.default_rng(seed).permutation(len(labels))
    return [(np.setdiff1d(np.arange(len(labels)), idx[f::k]), np.sort(idx[f::k])) for f in range(k)]


def _per_layer(params, s):
    def one(w):
        w = np.asarray(w)
        if w.ndim < 2:
            return np.ones(w.shape, bool)
        k = int(round(s * w.size))
        threshold = np.sort(np.abs(w).ravel())[k - 1] if k > 0 else -np.inf
        return np.abs(w) > threshold
    return jax.tree.map(one, params)


def _int8_dense(x, q, scale):
    s_x = jnp.max(jnp.abs(x), axis=1, keepdims=True) / 127
    s_x = jnp.where(s_x > 0, s_x, jnp.ones_like(s_x))
    xq = jnp.clip(jnp.round(x / s_x), -127, 127).astype(jnp.int8)
    return jax.lax.dot(xq, q, preferred_element_type=jnp.int32).astype(jnp.float32) * s_x * scale


def _csr(w):
    nnz = int(np.count_nonzero(w))
    return 8 * nnz + 4 * (w.shape[0] + 1)


RIGHT = {
    "07.1": random_swap,
    "07.2": _folds,
    "07.3": lambda lr, wd: optax.chain(optax.scale_by_adam(), optax.add_decayed_weights(wd), optax.scale(-lr)),
    "08.1": _per_layer,
    "08.2": _int8_dense,
    "08.3": _csr,
}
WRONG = {
    "07.1": [_adjacent_swap, lambda tokens, n, rng: tokens],
    "07.2": [_unstratified],
    "07.3": [lambda lr, wd: optax.chain(optax.add_decayed_weights(wd), optax.adam(lr))],  # L2 through Adam
    "08.1": [lambda params, s: magnitude_masks(params, s)],  # global, not per layer
    "08.2": [lambda x, q, scale: x @ (q.astype(jnp.float32) * scale),  # right numbers, float product
             lambda x, q, scale: _int8_dense(x, q, scale) * 1.1],
    "08.3": [lambda w: 8 * int(np.count_nonzero(w)) + 4 * w.shape[0]],  # one row pointer short
}


@pytest.mark.parametrize("exercise", sorted(RIGHT))
def test_right_answer_passes(exercise):
    assert course.check(exercise, RIGHT[exercise], quiet=True)


@pytest.mark.parametrize("exercise,k", [(e, k) for e in sorted(WRONG) for k in range(len(WRONG[e]))])
def test_wrong_answer_fails_with_a_message(exercise, k):
    result = course.check(exercise, WRONG[exercise][k], quiet=True)
    assert not result and result.message


@pytest.mark.parametrize("exercise", sorted(RIGHT))
def test_placeholder_fails(exercise):  # the tutorial's cell `def f(...): ...` returns None
    assert not course.check(exercise, lambda *args: None, quiet=True)
