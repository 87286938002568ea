"""Every exercise's checker accepts a right answer and rejects plausible wrong ones, with a message.

For each exercise of ``lstmjax.course`` (tutorials 01–11) the table below holds a right answer
(written here, independently of the worked solutions, which CI runs as notebooks in
``tests/test_course.py``) and at least two wrong answers a learner could plausibly write, each
with a phrase its message must contain: the checker must reject it *for the right reason*, not
by crashing ("your code raised"). A placeholder (the tutorial's ``...`` body, or ``None``) must be
reported as "returned None" / "no answer yet". The "from scratch" exercises must refuse an
answer that calls the library function they ask the learner to write.
"""

from __future__ import annotations

import collections
import functools
import itertools
import math
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lstmjax import course
from lstmjax.course.t02 import _early_stopping_reference
from lstmjax.course.t03 import _merge, learn_bpe_reference, window_batches_reference
from lstmjax.course.t11 import gru_step_backward_reference

sigmoid = jax.nn.sigmoid


# ------------------------------------------------------------------ 01


def _count_classifier(lstm_biases=1, bidirectional_ok=True):
    def count(V, E, H, C, cell="lstm", layers=1, bidirectional=False):
        D = 2 if bidirectional and bidirectional_ok else 1
        per_layer = {"lstm": lambda F: 4 * (H * (F + H) + lstm_biases * H), "gru": lambda F: 3 * (H * (F + H) + 2 * H),
                     "rnn": lambda F: H * (F + H) + H}[cell]
        return V * E + sum(D * per_layer(E if i == 0 else D * H) for i in range(layers)) + D * H * C + C
    return count


def _rmsprop(eps_inside=True, sign=-1.0):
    def init(params):
        return jax.tree.map(jnp.zeros_like, params)

    def update(grads, s, lr, decay=0.9, eps=1e-8):
        s = jax.tree.map(lambda s, g: decay * s + (1 - decay) * g**2, s, grads)
        if eps_inside:
            return jax.tree.map(lambda g, s: sign * lr * g / jnp.sqrt(s + eps), grads, s), s
        return jax.tree.map(lambda g, s: sign * lr * g / (jnp.sqrt(s) + eps), grads, s), s

    return init, update


def _gradient_rms(reduce, join="/"):
    return lambda grads: {join.join(str(getattr(k, "key", k)) for k in path): float(reduce(g))
                          for path, g in jax.tree_util.tree_leaves_with_path(grads)}


# ------------------------------------------------------------------ 02


def _confusion_at(strict=True, transposed=False):
    def fn(p_pos, y_true, threshold):
        pred = (p_pos > threshold) if strict else (p_pos >= threshold)
        cm = np.zeros((2, 2), int)
        np.add.at(cm, (np.asarray(y_true), pred.astype(int)), 1)
        return cm.T if transposed else cm
    return fn


def _early_stopping_ties_improve(scores, patience):
    best_score, best_epoch = -math.inf, None
    for epoch, score in enumerate(scores, start=1):
        if score >= best_score:  # wrong: a tie counts as an improvement
            best_score, best_epoch = score, epoch
        if epoch - best_epoch >= patience:
            return best_epoch, epoch
    return best_epoch, len(scores)


# ------------------------------------------------------------------ 03


def _bpe_first_seen(word_counts, num_merges):  # ties broken by the order the pairs were first counted
    words = {tuple(w) + ("</w>",): c for w, c in word_counts.items()}
    merges = []
    for _ in range(num_merges):
        pairs = collections.Counter()
        for symbols, c in words.items():
            for pair in itertools.pairwise(symbols):
                pairs[pair] += c
        if not pairs:
            break
        best = pairs.most_common(1)[0][0]
        merges.append(best)
        new = {}
        for symbols, c in words.items():
            merged = _merge(symbols, best)
            new[merged] = new.get(merged, 0) + c
        words = new
    return merges


def _window_batches(order="shuffle", kind="stable", window_on=True):
    def fn(lengths, batch_size, window, seed):
        lengths = np.asarray(lengths)
        idx = np.random.default_rng(seed).permutation(len(lengths)) if order == "shuffle" else np.arange(len(lengths))
        if not window_on:
            idx = np.argsort(lengths, kind="stable")
            return [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]
        out = []
        for start in range(0, len(idx), window * batch_size):
            rows = idx[start:start + window * batch_size]
            rows = rows[np.argsort(lengths[rows], kind=kind)]
            out += [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
        return out
    return fn


def _type_coverage(vocab, token_lists):  # wrong: the share of distinct tokens
    types = {t for tokens in token_lists for t in tokens}
    return sum(t in vocab for t in types) / len(types)


def _to_utf8(decode, encode="utf-8"):
    def fn(path):
        text = pathlib.Path(path).read_bytes().decode(decode)
        pathlib.Path(path).write_text(text, encoding=encode)
    return fn


# ------------------------------------------------------------------ 04


def _peephole(o_sees_new=True, use_peepholes=True):
    def step(p, carry, x_t):
        h_prev, c_prev = carry
        z_i, z_f, z_c, z_o = jnp.split(x_t @ p["W_x"] + h_prev @ p["W_h"] + p["b"], 4, axis=-1)
        k = 1.0 if use_peepholes else 0.0
        i_t, f_t = sigmoid(z_i + k * p["p_i"] * c_prev), sigmoid(z_f + k * p["p_f"] * c_prev)
        c_t = f_t * c_prev + i_t * jnp.tanh(z_c)
        h_t = sigmoid(z_o + k * p["p_o"] * (c_t if o_sees_new else c_prev)) * jnp.tanh(c_t)
        return (h_t, c_t), h_t
    return step


def _cifg(coupled=True, order="fco"):
    def step(p, carry, x_t):
        h_prev, c_prev = carry
        parts = dict(zip(order, jnp.split(x_t @ p["W_x"] + h_prev @ p["W_h"] + p["b"], 3, axis=-1)))
        f_t = sigmoid(parts["f"])
        i_t = 1.0 - f_t if coupled else sigmoid(-parts["c"])
        c_t = f_t * c_prev + i_t * jnp.tanh(parts["c"])
        h_t = sigmoid(parts["o"]) * jnp.tanh(c_t)
        return (h_t, c_t), h_t
    return step


def _gru(reset_before=True, recurrent_bias=False):
    def step(p, h_prev, x_t):
        W_hr, W_hz, W_hn = jnp.split(p["W_h"], 3, axis=-1)
        b_hr, b_hz, b_hn = jnp.split(p["b_h"], 3)
        x_r, x_z, x_n = jnp.split(x_t @ p["W_x"] + p["b_x"], 3, axis=-1)
        r_t, z_t = sigmoid(x_r + h_prev @ W_hr + b_hr), sigmoid(x_z + h_prev @ W_hz + b_hz)
        if reset_before:
            n_t = jnp.tanh(x_n + (r_t * h_prev) @ W_hn + (b_hn if recurrent_bias else 0.0))
        else:
            n_t = jnp.tanh(x_n + r_t * (h_prev @ W_hn + b_hn))
        h_t = (1.0 - z_t) * n_t + z_t * h_prev
        return h_t, h_t
    return step


def _document_count(lstm_biases=1, dense_bias=True):
    return lambda V, E, H, C: V * E + 4 * (H * (E + H) + lstm_biases * H) + H * C + (C if dense_bias else 0)


# ------------------------------------------------------------------ 05


def _keras_model(mask_zero=True, activation="softmax"):
    def build(vocab_size, embedding_size, units, num_classes, max_sequence_length):
        os.environ.setdefault("KERAS_BACKEND", "jax")
        import keras

        return keras.Sequential([
            keras.Input((max_sequence_length,), dtype="int32"),
            keras.layers.Embedding(input_dim=vocab_size, output_dim=embedding_size, mask_zero=mask_zero),
            keras.layers.LSTM(units=units),
            keras.layers.Dense(units=num_classes, activation=activation),
        ])
    return build


def _unknown_share(kind):
    from lstmjax.data.vocab import UNK_ID

    def fn(prepared, split):
        rows = [np.asarray(r, np.int64) for r in prepared[split]["token_ids"][:]]
        if kind == "per_review":
            return float(np.mean([np.mean(r == UNK_ID) for r in rows if len(r)]))
        share = float(np.mean(np.concatenate(rows) == UNK_ID))
        return share if kind == "right" else 1 - share
    return fn


@functools.cache
def _early_stopping_runs():
    """Small fits on a toy set: (data, (state, history)) with early stopping, and two wrong pairings."""
    from lstmjax import TextClassifier
    from lstmjax.training import EarlyStopping, create_train_state, fit, make_optimizer

    rng = np.random.default_rng(0)

    def random_split(n):  # random labels: what the model learns of one split says nothing of another
        return {"token_ids": [rng.integers(2, 10, int(k)).tolist() for k in rng.integers(1, 6, n)],
                "label": rng.integers(0, 2, n).tolist()}

    train, val = random_split(32), random_split(32)
    state = create_train_state(TextClassifier(10, 2, embed_dim=8, hidden_size=8), jax.random.key(0),
                               make_optimizer("adam", 0.05))
    stopped = fit(state, train, epochs=12, batch_size=8, validation_data=val,
                  callbacks=[EarlyStopping(2, monitor="loss")])
    assert stopped[1]["stopped_early"], stopped[1]["val_loss"]  # the validation loss rose: fit stopped
    last = fit(state, train, epochs=len(stopped[1]["loss"]), batch_size=8, validation_data=val,
               callbacks=[EarlyStopping(2, monitor="loss", restore_best=False)])
    plain = fit(state, train, epochs=3, batch_size=8, validation_data=val)
    return val, stopped, last, plain


def _es(which):
    def make():
        _, stopped, last, plain = _early_stopping_runs()
        if which == "right":
            return stopped
        if which == "made_up":  # a history typed in, with the right shape, and a real state
            return stopped[0], {"loss": [0.6, 0.4, 0.3], "val_loss": [0.69, 0.5, 0.55], "best_epoch": 2,
                                "stopped_early": False}
        if which == "last_epoch":  # the state of the last epoch, not the best
            return last
        return plain  # no early stopping at all
    return make


# ------------------------------------------------------------------ 06


def _loss_sum(params, x, y, mask):
    logits = x @ params["w"] + params["b"]
    return jnp.sum(jnp.where(mask, jnp.logaddexp(0.0, logits) - y * logits, 0.0))


def _grad_psum_count(params, x, y, mask):
    g = jax.lax.psum(jax.grad(_loss_sum)(params, x, y, mask), "devices")
    count = jax.lax.psum(jnp.sum(mask), "devices")
    return jax.tree.map(lambda t: t / jnp.maximum(count, 1).astype(t.dtype), g)


def _grad_pmean(guard=True):
    def fn(params, x, y, mask):
        g = jax.grad(_loss_sum)(params, x, y, mask)
        n = jnp.sum(mask)
        n = jnp.maximum(n, 1) if guard else n
        return jax.lax.pmean(jax.tree.map(lambda t: t / n.astype(t.dtype), g), "devices")
    return fn


def _shard_map_step(extra_psum=False, update=True):
    from jax.sharding import PartitionSpec as P

    mesh = jax.make_mesh((jax.device_count(),), ("data",))

    def body(params, x, y, mask):
        g = jax.grad(_loss_sum)(params, x, y, mask)
        if extra_psum:
            g = jax.lax.psum(g, "data")
        count = jax.lax.psum(jnp.sum(mask), "data").astype(x.dtype)
        g = jax.tree.map(lambda t: t / count, g)
        return (jax.tree.map(lambda p, t: p - 0.5 * t, params, g) if update else params), g

    return jax.jit(jax.shard_map(body, mesh=mesh, in_specs=(P(), P("data"), P("data"), P("data")), out_specs=P()))


def _allreduce(unit=4, embedding=True):
    return lambda V=20000, E=128, H=128, C=2: unit * ((V * E if embedding else 0) + 4 * H * (E + H) + 4 * H + H * C + C)


# ------------------------------------------------------------------ 07, 08


def _adjacent_swap(tokens, n, rng):  # not uniform over pairs
    out = list(tokens)
    if len(out) < 2:
        return out
    for _ in range(n):
        i = int(rng.integers(len(out) - 1))
        out[i], out[i + 1] = out[i + 1], out[i]
    return out


def _swap(tokens, n, rng):
    out = list(tokens)
    if len(out) < 2:
        return out
    for _ in range(n):
        i, j = rng.choice(len(out), size=2, replace=False)
        out[i], out[j] = out[j], out[i]
    return out


def _library_swap(tokens, n, rng):
    from lstmjax.data.augment import random_swap

    return random_swap(tokens, n, rng)


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


def _library_folds(labels, k, seed=0):
    import lstmjax

    return lstmjax.stratified_kfold(labels, k, seed)


def _fold_gain(kind):
    def fn(candidate, baseline):
        d = np.asarray(candidate) - np.asarray(baseline)
        k = len(d)
        if kind == "unpaired":
            return d.mean(), np.sqrt(np.var(candidate, ddof=1) / k + np.var(baseline, ddof=1) / k)
        if kind == "ddof0":
            return d.mean(), d.std(ddof=0) / np.sqrt(k)
        return d.mean(), d.std(ddof=1) / np.sqrt(k)
    return fn


def _per_layer(params, s, prune_biases=False, scope="per_layer"):
    leaves = [np.asarray(w) for w in jax.tree.leaves(params)]
    if scope == "global":
        pool = np.sort(np.concatenate([np.abs(w).ravel() for w in leaves if w.ndim >= 2]))
        k = round(s * pool.size)
        cut = pool[k - 1] if k > 0 else -np.inf

    def one(w):
        w = np.asarray(w)
        if w.ndim < 2 and not prune_biases:
            return np.ones(w.shape, bool)
        if scope == "global":
            return np.abs(w) > cut
        k = round(s * w.size)
        threshold = np.sort(np.abs(w).ravel())[k - 1] if k > 0 else -np.inf
        return np.abs(w) > threshold
    return jax.tree.map(one, params)


def _library_masks(params, s):
    from lstmjax.compress import magnitude_masks

    return magnitude_masks(params, s, scope="per_layer")


def _int8_dense(x, q, scale):
    s_x = jnp.max(jnp.abs(x), axis=1, keepdims=True) / 127
    s_x = jnp.where(s_x > 0, s_x, jnp.ones_like(s_x))
    xq = jnp.clip(jnp.round(x / s_x), -127, 127).astype(jnp.int8)
    return jax.lax.dot(xq, q, preferred_element_type=jnp.int32).astype(jnp.float32) * s_x * scale


def _csr(value_bytes=4, row_pointers=1):
    return lambda w: (value_bytes + 4) * int(np.count_nonzero(w)) + 4 * (w.shape[0] + row_pointers)


# ------------------------------------------------------------------ 09


def _occlusion(kind="right"):
    def fn(f, x, baseline):
        full = f(x)
        if kind == "cumulative":
            return jnp.stack([full - f(x.at[:t + 1].set(baseline[:t + 1])) for t in range(x.shape[0])])
        base = jnp.zeros_like(x) if kind == "zeros" else baseline
        scores = jnp.stack([full - f(x.at[t].set(base[t])) for t in range(x.shape[0])])
        return -scores if kind == "sign" else scores
    return fn


def _ig_midpoint(offset=0.5, times_x=True):
    def fn(f, x, baseline, steps):
        alphas = (jnp.arange(steps, dtype=jnp.float32) + offset) / steps
        path = baseline[None] + alphas[:, None, None] * (x - baseline)[None]
        mean_grad = jnp.mean(jax.vmap(jax.grad(f))(path), axis=0)
        return jnp.sum(((x - baseline) if times_x else 1.0) * mean_grad, axis=-1)
    return fn


def _top_token(kind="right"):
    def fn(model, variables, token_ids, lengths):
        from lstmjax.explain import integrated_gradients

        a = integrated_gradients(model, variables, token_ids, lengths, steps=32)
        scores = np.asarray(a.scores)
        valid = np.arange(token_ids.shape[1])[None] < np.asarray(lengths)[:, None]
        if kind == "signed":
            return np.argmax(np.where(valid, scores, -np.inf), axis=1)
        return np.argmax(np.where(valid, np.abs(scores), -1.0), axis=1)
    return fn


def _baseline_gap(kind="right"):
    def fn(model, variables, token_ids, lengths, baseline_id):
        logits = model.apply(variables, token_ids, lengths)
        target = jnp.argmax(logits, axis=-1)
        real = jnp.arange(token_ids.shape[1])[None] < lengths[:, None]
        base_ids = jnp.where(real, baseline_id, token_ids)
        base_logits = model.apply(variables, base_ids, lengths)
        if kind == "probabilities":  # the gap in probability, not in logit
            logits, base_logits = jax.nn.softmax(logits), jax.nn.softmax(base_logits)
        base_target = jnp.argmax(base_logits, axis=-1) if kind == "base_class" else target
        rows = jnp.arange(token_ids.shape[0])
        return logits[rows, target] - base_logits[rows, base_target]
    return fn


# ------------------------------------------------------------------ 10


MOBILE = r"(?<!\d)(?:(?:\+|00)86\s?)?1[3-9]\d(?:[\s-]?\d{4}){2}(?!\d)"


def _clipped_mean(kind="right"):
    def fn(grads, clip):
        leaves, treedef = jax.tree.flatten(grads)
        if kind == "library":
            from lstmjax.privacy.dp import dp_aggregate

            tx = dp_aggregate(clip, 0.0, jax.random.key(0), batch_size=leaves[0].shape[0])
            return tx.update(grads, tx.init(None))[0]
        if kind == "per_leaf":
            out = []
            for g in leaves:
                norms = jnp.sqrt(jnp.sum(g.reshape(g.shape[0], -1) ** 2, 1))
                factor = jnp.minimum(1.0, clip / jnp.maximum(norms, 1e-12))
                out.append(jnp.tensordot(factor, g, axes=1) / g.shape[0])
            return jax.tree.unflatten(treedef, out)
        norms = jnp.sqrt(sum(jnp.sum(g.reshape(g.shape[0], -1) ** 2, 1) for g in leaves))
        factor = clip / norms if kind == "unguarded" else jnp.minimum(1.0, clip / jnp.maximum(norms, 1e-12))
        return jax.tree.unflatten(treedef, [jnp.tensordot(factor, g, axes=1) / g.shape[0] for g in leaves])
    return fn


def _auc(kind="right"):
    def fn(members, nonmembers):
        m, n = np.asarray(members)[:, None], np.asarray(nonmembers)[None, :]
        if kind == "library":
            from lstmjax.privacy.membership import membership_attack

            return membership_attack(members, nonmembers)["auc"]
        if kind == "reversed":
            return float(np.mean((m > n) + 0.5 * (m == n)))
        if kind == "ties_zero":
            return float(np.mean(m < n))
        return float(np.mean((m < n) + 0.5 * (m == n)))
    return fn


# ------------------------------------------------------------------ 11


def _flops(mac=False, train_factor=3.0):
    def fn(embed, hidden, classes, train=False):
        forward = (1 if mac else 2) * (4 * hidden * (embed + hidden) + hidden * classes)
        return train_factor * forward if train else forward
    return fn


def _gru_backward(kind="right"):
    def fn(gates, hw, h_prev, dh, W_h):
        d_xw, d_hw, dh_prev = gru_step_backward_reference(gates, hw, h_prev, dh, W_h)
        if kind == "no_reset":
            return d_xw, d_xw, dh * jnp.split(gates, 3, axis=-1)[1] + d_xw @ W_h.T
        if kind == "no_direct":
            return d_xw, d_hw, d_hw @ W_h.T
        if kind == "dz_sign":
            _, z, n = jnp.split(gates, 3, axis=-1)
            d_z = dh * (n - h_prev) * z * (1.0 - z)
            d_xw = jnp.concatenate([jnp.split(d_xw, 3, -1)[0], d_z, jnp.split(d_xw, 3, -1)[2]], -1)
            d_hw = jnp.concatenate([jnp.split(d_hw, 3, -1)[0], d_z, jnp.split(d_hw, 3, -1)[2]], -1)
            return d_xw, d_hw, dh * z + d_hw @ W_h.T
        return d_xw, d_hw, dh_prev
    return fn


def _remat_scan(checkpoint=True, swap=True):
    from lstmjax import scan_cell

    def fn(step, params, inputs, carry, chunk):
        B, T = inputs.shape[:2]
        blocks = inputs.reshape(B, T // chunk, chunk, -1)
        blocks = jnp.swapaxes(blocks, 0, 1) if swap else blocks.reshape(T // chunk, B, chunk, -1)

        def block(carry, x_block):
            return scan_cell(step, params, x_block, carry)

        carry, ys = jax.lax.scan(jax.checkpoint(block) if checkpoint else block, carry, blocks)
        return carry, jnp.swapaxes(ys, 0, 1).reshape(B, T, -1)
    return fn


# ------------------------------------------------------------------ the table

# exercise id: (right answer, [(wrong answer, a phrase its message contains), ...], placeholder);
# answers are built lazily (some need data, devices or a trained model).
CASES = {
    "01.1": (lambda: _count_classifier(),
             [(lambda: _count_classifier(bidirectional_ok=False), "Bidirectional"),
              (lambda: _count_classifier(lstm_biases=2), "per-layer formula of the LSTM")],
             lambda: lambda *a: None),
    "01.2": (lambda: lambda F, H: 6 * H * (F + H),
             [(lambda: lambda F, H: 3 * H * (F + H), "2 FLOPs"),
              (lambda: lambda F, H: 8 * H * (F + H), "LSTM's count")],
             lambda: lambda *a: None),
    "01.3": (lambda: _rmsprop(),
             [(lambda: _rmsprop(eps_inside=False), "inside the root"),
              (lambda: _rmsprop(sign=1.0), "Is the sign right")],
             lambda: (lambda p: None, lambda *a, **k: None)),
    "01.4": (lambda: _gradient_rms(lambda g: jnp.sqrt(jnp.mean(g**2))),
             [(lambda: _gradient_rms(lambda g: jnp.mean(jnp.abs(g))), "root mean square"),
              (lambda: _gradient_rms(lambda g: jnp.sqrt(jnp.mean(g**2)), join="."), "'/'-joined")],
             lambda: lambda g: None),
    "01.5": (lambda: lambda n, b, r, T: math.ceil(n / b) * b * T / r,
             [(lambda: lambda n, b, r, T: n * T / r, "full step"),
              (lambda: lambda n, b, r, T: (n // b) * b * T / r, "⌈")],
             lambda: lambda *a: None),
    "02.1": (lambda: lambda cm: float(np.mean(np.diag(cm) / np.sum(cm, axis=1))),
             [(lambda: lambda cm: float(np.trace(cm) / np.sum(cm)), "per-class recalls"),
              (lambda: lambda cm: float(np.mean(np.diag(cm) / np.maximum(np.sum(cm, axis=0), 1))), "expected 0.5")],
             lambda: lambda cm: None),
    "02.2": (lambda: _confusion_at(),
             [(lambda: _confusion_at(strict=False), "P(pos) > threshold"),
              (lambda: _confusion_at(transposed=True), "transposed")],
             lambda: lambda *a: None),
    "02.3": (lambda: _early_stopping_reference,
             [(lambda: lambda s, patience: (int(np.argmax(s)) + 1, len(s)), "expected"),
              (lambda: _early_stopping_ties_improve, "A tie is not an improvement")],
             lambda: lambda *a, **k: None),
    "02.4": (lambda: lambda p, n: math.sqrt(p * (1 - p) / n),
             [(lambda: lambda p, n: math.sqrt(p * (1 - p)), "divide the variance by n"),
              (lambda: lambda p, n: p * (1 - p) / n, "simulated")],
             lambda: lambda *a: None),
    "03.1": (lambda: lambda v, lists: sum(t in v for ts in lists for t in ts) / sum(len(ts) for ts in lists),
             [(lambda: _type_coverage, "distinct"),
              (lambda: lambda v, lists: float(np.mean([sum(t in v for t in ts) / len(ts) for ts in lists])),
               "expected")],
             lambda: lambda *a: None),
    "03.2": (lambda: learn_bpe_reference,
             [(lambda: lambda wc, n: learn_bpe_reference({w: 1 for w in wc}, n), "word *types*"),
              (lambda: _bpe_first_seen, "smallest pair"),
              (lambda: lambda wc, n: learn_bpe_reference(wc, n)[:-1], "Expected")],
             lambda: lambda *a: None),
    "03.3": (lambda: window_batches_reference,
             [(lambda: _window_batches(window_on=False), "whole data set"),
              (lambda: _window_batches(order="stored"), "stored order"),
              (lambda: _window_batches(kind="quicksort"), "stable sort")],
             lambda: lambda *a: None),
    "03.4": (lambda: lambda s, m, tr: s[:m] if tr == "post" else s[max(len(s) - m, 0):],
             [(lambda: lambda s, m, tr: s[:m], "'pre' from the start"),
              (lambda: lambda s, m, tr: s[:m] if tr == "post" else s[len(s) - m:], "expected")],
             lambda: lambda *a: None),
    "03.5": (lambda: _to_utf8("gb18030"),
             [(lambda: _to_utf8("latin-1"), "gbk"),
              (lambda: _to_utf8("gb18030", encode="utf-16"), "still does not load")],  # Windows' "Unicode"
             lambda: lambda path: None),
    "04.1": (lambda: _peephole(),
             [(lambda: _peephole(o_sees_new=False), "new cell state"),
              (lambda: _peephole(use_peepholes=False), "peepholes on i and f")],
             lambda: lambda *a: None),
    "04.2": (lambda: _cifg(),
             [(lambda: _cifg(coupled=False), "1 − f_t"),
              (lambda: _cifg(order="cfo"), "gates in the order f, c̃, o")],
             lambda: lambda *a: None),
    "04.3": (lambda: _document_count(),
             [(lambda: _document_count(lstm_biases=2), "two LSTM bias vectors"),
              (lambda: _document_count(dense_bias=False), "has a bias too"),
              (lambda: lambda V, E, H, C: 2_691_842, "expected")],
             lambda: lambda *a: None),
    "04.4": (lambda: _gru(),
             [(lambda: _gru(reset_before=False), "*before*"),
              (lambda: _gru(recurrent_bias=True), "reset-before GRU")],
             lambda: lambda *a: None),
    "04.5": (lambda: lambda T, f, i, c: T * i * c if f == 1 else i * c * (1 - f**T) / (1 - f),
             [(lambda: lambda T, f, i, c: i * c * (1 - f**T) / (1 - f) if f != 1 else math.nan, "0/0"),
              (lambda: lambda T, f, i, c: (T - 1) * i * c if f == 1 else i * c * (1 - f ** (T - 1)) / (1 - f),
               "running")],
             lambda: lambda *a: None),
    "05.1": (lambda: _keras_model(),
             [(lambda: _keras_model(mask_zero=False), "mask_zero=True"),
              (lambda: _keras_model(activation=None), "softmax")],
             lambda: lambda *a: None),
    "05.2": (lambda: _unknown_share("right"),
             [(lambda: _unknown_share("per_review"), "per-review"),
              (lambda: _unknown_share("known"), "expected")],
             lambda: lambda *a: None),
    "05.3": (_es("right"),
             [(_es("made_up"), "the history says"),
              (_es("last_epoch"), "the history says"),
              (_es("plain"), "no best epoch recorded")],
             lambda: (None, None)),
    "06.1": (lambda: (_grad_psum_count, _grad_pmean()),
             [(lambda: (_grad_pmean(), _grad_pmean()), "psum the gradient"),
              (lambda: (_grad_psum_count, _grad_pmean(guard=False)), "max(count, 1)")],
             lambda: (lambda *a: None, lambda *a: None)),
    "06.2": (lambda: _shard_map_step(),
             [(lambda: _shard_map_step(extra_psum=True), "too large"),
              (lambda: _shard_map_step(update=False), "the new parameters")],
             lambda: None),
    "06.3": (lambda: _allreduce(),
             [(lambda: _allreduce(unit=1), "4 bytes each"),
              (lambda: _allreduce(embedding=False), "leaves out the embedding"),
              (lambda: lambda *a: 10_767_368, "bytes; the gradients")],
             lambda: lambda *a: None),
    "06.4": (lambda: lambda lr, b0, b, rule: lr * b / b0 if rule == "linear" else lr * math.sqrt(b / b0),
             [(lambda: lambda lr, b0, b, rule: lr * b / b0, "√"),
              (lambda: lambda lr, b0, b, rule: lr * math.sqrt(b / b0), "B/B₀")],
             lambda: lambda *a: None),
    "07.1": (lambda: _swap,
             [(lambda: _adjacent_swap, "not uniform"),
              (lambda: lambda tokens, n, rng: list(tokens), "distinct"),
              (lambda: _library_swap, "calls lstmjax.data.augment.random_swap")],
             lambda: lambda *a: None),
    "07.2": (lambda: _folds,
             [(lambda: _unstratified, "spread unevenly"),
              (lambda: _library_folds, "calls lstmjax.training.crossval.stratified_kfold")],
             lambda: lambda *a: None),
    "07.3": (lambda: lambda lr, wd: optax.chain(optax.scale_by_adam(), optax.add_decayed_weights(wd), optax.scale(-lr)),
             [(lambda: lambda lr, wd: optax.chain(optax.add_decayed_weights(wd), optax.adam(lr)), "the order is"),
              (lambda: lambda lr, wd: optax.chain(optax.scale_by_adam(), optax.scale(-lr), optax.add_decayed_weights(wd)),
               "the order is")],
             lambda: lambda *a: None),
    "07.4": (lambda: _fold_gain("right"),
             [(lambda: _fold_gain("unpaired"), "unpaired"),
              (lambda: _fold_gain("ddof0"), "ddof=1")],
             lambda: lambda *a: None),
    "08.1": (lambda: _per_layer,
             [(lambda: _library_masks, "calls lstmjax.compress"),
              (lambda: functools.partial(_per_layer, prune_biases=True), "is a bias"),
              (lambda: functools.partial(_per_layer, scope="global"), "round(s * size)")],
             lambda: lambda *a: None),
    "08.2": (lambda: _int8_dense,
             [(lambda: lambda x, q, scale: x @ (q.astype(jnp.float32) * scale), "no integer matrix product"),
              (lambda: lambda x, q, scale: _int8_dense(x, q, scale) * 1.1, "too far")],
             lambda: lambda *a: None),
    "08.3": (lambda: _csr(),
             [(lambda: _csr(row_pointers=0), "row pointers"),
              (lambda: _csr(value_bytes=8), "CSR needs")],
             lambda: lambda w: None),
    "09.1": (lambda: _occlusion(),
             [(lambda: _occlusion("sign"), "wrong sign"),
              (lambda: _occlusion("cumulative"), "tokens 0..t together"),
              (lambda: _occlusion("zeros"), "not by zeros")],
             lambda: lambda *a: None),
    "09.2": (lambda: _ig_midpoint(),
             [(lambda: _ig_midpoint(offset=0.0), "left-end points"),
              (lambda: _ig_midpoint(times_x=False), "multiply by (x − baseline)")],
             lambda: lambda *a: None),
    "09.3": (lambda: _top_token(),
             [(lambda: _top_token("signed"), "largest signed score"),
              (lambda: lambda model, variables, ids, lengths: np.zeros(ids.shape[0], int), "expected")],
             lambda: lambda *a: None),
    "09.4": (lambda: _baseline_gap(),
             [(lambda: _baseline_gap("probabilities"), "*real* tokens"),
              (lambda: _baseline_gap("base_class"), "not for x'")],
             lambda: lambda *a: None),
    "10.1": (lambda: MOBILE,
             [(lambda: r"(?:(?:\+|00)86\s?)?1[3-9]\d(?:[\s-]?\d{4}){2}", "holds no mobile number"),
              (lambda: r"(?<!\d)(?:\+86\s?)?1[3-9]\d{9}(?!\d)", "no match")],
             lambda: r"..."),
    "10.2": (lambda: _clipped_mean(),
             [(lambda: _clipped_mean("per_leaf"), "global one over all leaves"),
              (lambda: _clipped_mean("unguarded"), "norm 0"),
              (lambda: _clipped_mean("library"), "calls lstmjax.privacy.dp.dp_aggregate")],
             lambda: lambda *a: None),
    "10.3": (lambda: _auc(),
             [(lambda: _auc("reversed"), "other direction"),
              (lambda: _auc("ties_zero"), "ties count one half"),
              (lambda: _auc("library"), "calls lstmjax.privacy.membership.membership_attack")],
             lambda: lambda *a: None),
    "11.1": (lambda: _flops(),
             [(lambda: _flops(mac=True), "a multiply-add is 2 FLOP"),
              (lambda: _flops(train_factor=2.0), "training FLOP per token")],
             lambda: lambda *a, **k: None),
    "11.2": (lambda: _gru_backward(),
             [(lambda: _gru_backward("no_reset"), "multiplied by r_t"),
              (lambda: _gru_backward("no_direct"), "directly"),
              (lambda: _gru_backward("dz_sign"), "h_{t-1} − n")],
             lambda: lambda *a: None),
    "11.3": (lambda: _remat_scan(),
             [(lambda: _remat_scan(checkpoint=False), "nothing is checkpointed"),
              (lambda: _remat_scan(swap=False), "differs from scan_cell's")],
             lambda: lambda *a: None),
}

WRONG = [(exercise_id, k) for exercise_id, (_, wrong, _) in sorted(CASES.items()) for k in range(len(wrong))]


def _context(exercise_id: str) -> dict:
    if exercise_id == "05.3":
        return {"validation_data": _early_stopping_runs()[0]}
    return {}


def test_every_exercise_has_a_right_and_two_wrong_answers():
    registered = {k for k in course.exercises() if not k.startswith("00.")}
    assert set(CASES) == registered, f"missing: {sorted(registered - set(CASES))}, unknown: {sorted(set(CASES) - registered)}"
    few = [k for k, (_, wrong, _) in CASES.items() if len(wrong) < 2]
    assert not few, f"exercises with fewer than two wrong answers: {few}"


@pytest.mark.parametrize("exercise_id", sorted(CASES))
def test_right_answer_passes(exercise_id):
    right = course.check(exercise_id, CASES[exercise_id][0](), quiet=True, **_context(exercise_id))
    assert right.ok, right.message


@pytest.mark.parametrize("exercise_id,k", WRONG, ids=[f"{e}-wrong{k + 1}" for e, k in WRONG])
def test_wrong_answer_is_rejected_for_its_reason(exercise_id, k):
    answer, phrase = CASES[exercise_id][1][k]
    result = course.check(exercise_id, answer(), quiet=True, **_context(exercise_id))
    assert not result.ok, f"{exercise_id} accepted a wrong answer: {result.message}"
    assert not result.message.startswith("your code raised"), result.message
    assert phrase in result.message, result.message


@pytest.mark.parametrize("exercise_id", sorted(CASES))
def test_placeholder_says_there_is_no_answer_yet(exercise_id):
    result = course.check(exercise_id, CASES[exercise_id][2](), quiet=True, **_context(exercise_id))
    assert not result.ok
    # 03.5's function returns nothing by design: its placeholder shows as a file left unchanged.
    assert any(s in result.message for s in ("None", "write your pattern", "still `...`")), result.message
    assert not result.message.startswith("your code raised"), result.message


def test_grading_mode_raises_on_a_wrong_answer(monkeypatch):
    monkeypatch.setenv("LSTMJAX_GRADING", "1")
    assert course.check("00.1", lambda x: 2 * x, quiet=True)
    with pytest.raises(AssertionError, match="✗ 00.1: double"):
        course.check("00.1", lambda x: x + 2, quiet=True)


def test_watching_sees_a_call_through_any_name():
    from lstmjax.course._check import watching
    from lstmjax.data import augment

    alias = augment.random_swap
    with watching(augment.random_swap) as seen:
        alias(["a", "b"], 1, np.random.default_rng(0))
    assert seen == ["lstmjax.data.augment.random_swap"]
    with watching(augment.random_swap) as seen:
        _swap(["a", "b"], 1, np.random.default_rng(0))
    assert seen == []
