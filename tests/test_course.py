"""The checkable exercises (``lstmjax.course``) and their worked solutions.

* every ``tutorials/solutions/*.md`` runs top to bottom in fast mode (each solution ends with
  ``assert course.check(...)``), as ``tests/test_tutorials.py`` runs the tutorials;
* every exercise a tutorial calls is registered, every registered exercise is called by its
  tutorial and has a worked solution (found by glob, so new tutorials are covered as they appear);
* each checker of tutorials 01–06 accepts a reference answer and rejects a typical wrong one
  with a message that says what is wrong.
"""

from __future__ import annotations

import math
import os
import pathlib
import re
import tempfile
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _notebooks import execute

from lstmjax import course
from lstmjax.course.t02 import _early_stopping_reference

ROOT = pathlib.Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.md"))
SOLUTIONS = sorted((ROOT / "tutorials" / "solutions").glob("[0-9][0-9]_*.md"))
CALL = re.compile(r"""course\.check\(\s*["'](\d\d\.\d+)["']""")


def _calls(path: pathlib.Path) -> set[str]:
    return set(CALL.findall(path.read_text(encoding="utf-8")))


# ------------------------------------------------------------------ the solutions run


@pytest.mark.tutorial
@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solutions_run(path, monkeypatch, tmp_path):
    execute(path, monkeypatch, tmp_path, timeout=600)


# ------------------------------------------------------------------ registry ↔ tutorials ↔ solutions


def test_every_exercise_called_is_registered():
    registered = course.exercises()
    for path in TUTORIALS + SOLUTIONS:
        missing = sorted(_calls(path) - set(registered))
        assert not missing, f"{path.relative_to(ROOT)} calls unregistered exercises {missing}"


def test_every_registered_exercise_has_its_tutorial_and_solution():
    by_number = {p.name[:2]: p for p in TUTORIALS}
    solutions = {p.name[:2]: p for p in SOLUTIONS}
    for exercise_id in course.exercises():
        number = exercise_id.split(".")[0]
        if number == "00":  # the example exercise of lstmjax.course's docstring
            continue
        assert number in by_number, f"exercise {exercise_id} has no tutorials/{number}_*.md"
        assert exercise_id in _calls(by_number[number]), f"{by_number[number].name} never calls {exercise_id}"
        assert number in solutions, f"exercise {exercise_id} has no tutorials/solutions/{number}_*.md"
        text = solutions[number].read_text(encoding="utf-8")
        assert re.search(rf"""assert course\.check\(\s*["']{re.escape(exercise_id)}["']""", text), (
            f"{solutions[number].name} has no `assert course.check({exercise_id!r}, ...)`")


def test_solutions_are_named_after_their_tutorials():
    names = {p.name for p in TUTORIALS}
    for path in SOLUTIONS:
        assert path.name in names, f"tutorials/solutions/{path.name} matches no tutorials/*.md"


# ------------------------------------------------------------------ reference and wrong answers

sigmoid = jax.nn.sigmoid


def _count_classifier(V, E, H, C, cell="lstm", layers=1, bidirectional=False):
    D = 2 if bidirectional else 1
    per_layer = {"lstm": lambda F: 4 * (H * (F + H) + H), "gru": lambda F: 3 * (H * (F + H) + 2 * H),
                 "rnn": lambda F: H * (F + H) + H}[cell]
    return V * E + sum(D * per_layer(E if i == 0 else D * H) for i in range(layers)) + D * H * C + C


def _rmsprop(eps_inside=True):
    def init(params):
        return jax.tree.map(jnp.zeros_like, params)

    def update(grads, s, lr, decay=0.9, eps=1e-8):
        s = jax.tree.map(lambda s, g: decay * s + (1 - decay) * g**2, s, grads)
        if eps_inside:
            return jax.tree.map(lambda g, s: -lr * g / jnp.sqrt(s + eps), grads, s), s
        return jax.tree.map(lambda g, s: -lr * g / (jnp.sqrt(s) + eps), grads, s), s

    return init, update


def _gradient_rms(reduce):
    return lambda grads: {"/".join(str(getattr(k, "key", k)) for k in path): float(reduce(g))
                          for path, g in jax.tree_util.tree_leaves_with_path(grads)}


def _confusion_at(strict):
    def fn(p_pos, y_true, threshold):
        pred = (p_pos > threshold) if strict else (p_pos >= threshold)
        cm = np.zeros((2, 2), int)
        np.add.at(cm, (np.asarray(y_true), pred.astype(int)), 1)
        return cm

    return fn


def _peephole(o_sees_new):
    def step(p, carry, x_t):
        h_prev, c_prev = carry
        z_i, z_f, z_c, z_o = jnp.split(x_t @ p["W_x"] + h_prev @ p["W_h"] + p["b"], 4, axis=-1)
        i_t, f_t = sigmoid(z_i + p["p_i"] * c_prev), sigmoid(z_f + p["p_f"] * c_prev)
        c_t = f_t * c_prev + i_t * jnp.tanh(z_c)
        h_t = sigmoid(z_o + p["p_o"] * (c_t if o_sees_new else c_prev)) * jnp.tanh(c_t)
        return (h_t, c_t), h_t

    return step


def _cifg(coupled):
    def step(p, carry, x_t):
        h_prev, c_prev = carry
        z_f, z_c, z_o = jnp.split(x_t @ p["W_x"] + h_prev @ p["W_h"] + p["b"], 3, axis=-1)
        f_t = sigmoid(z_f)
        i_t = 1.0 - f_t if coupled else sigmoid(-z_c)
        c_t = f_t * c_prev + i_t * jnp.tanh(z_c)
        h_t = sigmoid(z_o) * jnp.tanh(c_t)
        return (h_t, c_t), h_t

    return step


def _gru(reset_before):
    def step(p, h_prev, x_t):
        W_hr, W_hz, W_hn = jnp.split(p["W_h"], 3, axis=-1)
        b_hr, b_hz, b_hn = jnp.split(p["b_h"], 3)
        x_r, x_z, x_n = jnp.split(x_t @ p["W_x"] + p["b_x"], 3, axis=-1)
        r_t, z_t = sigmoid(x_r + h_prev @ W_hr + b_hr), sigmoid(x_z + h_prev @ W_hz + b_hz)
        if reset_before:
            n_t = jnp.tanh(x_n + (r_t * h_prev) @ W_hn)
        else:
            n_t = jnp.tanh(x_n + r_t * (h_prev @ W_hn + b_hn))
        h_t = (1.0 - z_t) * n_t + z_t * h_prev
        return h_t, h_t

    return step


def _to_utf8(encoding):
    def fn(path):
        text = pathlib.Path(path).read_bytes().decode(encoding)
        pathlib.Path(path).write_text(text, encoding="utf-8")

    return fn


def _keras_model(mask_zero):
    def build(vocab_size, embedding_size, units, num_classes, max_sequence_length):
        os.environ.setdefault("KERAS_BACKEND", "jax")
        import keras

        return keras.Sequential([
            keras.Input((max_sequence_length,), dtype="int32"),
            keras.layers.Embedding(input_dim=vocab_size, output_dim=embedding_size, mask_zero=mask_zero),
            keras.layers.LSTM(units=units),
            keras.layers.Dense(units=num_classes, activation="softmax"),
        ])

    return build


def _unknown_share(per_review):
    from lstmjax.data.vocab import UNK_ID

    def fn(prepared, split):
        rows = [np.asarray(r, np.int64) for r in prepared[split]["token_ids"][:]]
        if per_review:
            return float(np.mean([np.mean(r == UNK_ID) for r in rows if len(r)]))
        return float(np.mean(np.concatenate(rows) == UNK_ID))

    return fn


def _history():
    from lstmjax import TextClassifier
    from lstmjax.training import EarlyStopping, create_train_state, fit, make_optimizer

    data = {"token_ids": [[2, 3], [4, 5], [2, 2, 3], [4]] * 4, "label": [0, 1, 0, 1] * 4}
    state = create_train_state(TextClassifier(10, 2, embed_dim=4, hidden_size=4), jax.random.key(0),
                               make_optimizer("adam", 0.05))
    return fit(state, data, epochs=3, batch_size=8, validation_data=data,
               callbacks=[EarlyStopping(2, monitor="loss")])[1]


def _history_without_patience():
    val_loss = [0.69, 0.5, 0.55, 0.6, 0.62, 0.7]  # the best epoch is 2; training went on to 6
    return {"loss": [0.6, 0.4, 0.3, 0.2, 0.1, 0.05], "val_loss": val_loss, "best_epoch": 2, "stopped_early": False}


def _loss_sum(params, x, y, mask):
    logits = x @ params["w"] + params["b"]
    return jnp.sum(jnp.where(mask, jnp.logaddexp(0.0, logits) - y * logits, 0.0))


def _grad_psum_count(params, x, y, mask):
    g = jax.lax.psum(jax.grad(_loss_sum)(params, x, y, mask), "devices")
    count = jax.lax.psum(jnp.sum(mask), "devices")
    return jax.tree.map(lambda t: t / jnp.maximum(count, 1).astype(t.dtype), g)


def _grad_pmean(params, x, y, mask):
    g = jax.grad(_loss_sum)(params, x, y, mask)
    return jax.lax.pmean(jax.tree.map(lambda t: t / jnp.maximum(jnp.sum(mask), 1).astype(t.dtype), g), "devices")


def _shard_map_step(extra_psum):
    from jax.sharding import PartitionSpec as P

    mesh = jax.make_mesh((jax.device_count(),), ("data",))

    def body(params, x, y, mask):
        g = jax.grad(_loss_sum)(params, x, y, mask)
        if extra_psum:
            g = jax.lax.psum(g, "data")
        count = jax.lax.psum(jnp.sum(mask), "data").astype(x.dtype)
        g = jax.tree.map(lambda t: t / count, g)
        return jax.tree.map(lambda p, t: p - 0.5 * t, params, g), g

    return jax.jit(jax.shard_map(body, mesh=mesh, in_specs=(P(), P("data"), P("data"), P("data")), out_specs=P()))


def _allreduce_values(V=20000, E=128, H=128, C=2):
    return V * E + 4 * H * (E + H) + 4 * H + H * C + C


def _waste(sort):
    from lstmjax.data.batching import batches, prepare
    from lstmjax.data.loading import load_dataset

    train = prepare(load_dataset("builtin", cache_dir=tempfile.mkdtemp()), "english", min_freq=2)["train"]

    def waste(out):
        return sum(int(b["mask"].sum()) * b["token_ids"].shape[1] for b in out) / sum(int(b["lengths"].sum()) for b in out)

    return {w: waste(list(batches(train, 32, shuffle=sort, seed=0, drop_remainder=sort, sort_window=w)))
            for w in (1, 4, 16, 64, 256)}


def _bpe_prepared():
    from lstmjax.data.batching import prepare
    from lstmjax.data.loading import load_dataset
    from lstmjax.data.tokenizer import get_tokenizer

    return prepare(load_dataset("builtin", cache_dir=tempfile.mkdtemp()), get_tokenizer("bpe", vocab_size=4000))


def _wrong_bpe():
    from lstmjax.data.tokenizer import get_tokenizer

    return types.SimpleNamespace(tokenizer=get_tokenizer("english"))  # prepared with word tokens


# exercise id: (reference answer, typical wrong answer, a phrase the wrong answer's message contains);
# answers are built lazily (some need data or a trained model).
CASES = {
    "01.1": (lambda: _count_classifier,
             lambda: lambda V, E, H, C, cell, layers, bi: _count_classifier(V, E, H, C, cell, layers, False),
             "Bidirectional"),
    "01.2": (lambda: lambda F, H: 6 * H * (F + H), lambda: lambda F, H: 3 * H * (F + H), "2 FLOPs"),
    "01.3": (lambda: _rmsprop(True), lambda: _rmsprop(False), "inside the root"),
    "01.4": (lambda: _gradient_rms(lambda g: jnp.sqrt(jnp.mean(g**2))),
             lambda: _gradient_rms(lambda g: jnp.mean(jnp.abs(g))), "root mean square"),
    "01.5": (lambda: lambda n, b, r, T: math.ceil(n / b) * b * T / r, lambda: lambda n, b, r, T: n * T / r,
             "full step"),
    "02.1": (lambda: lambda cm: float(np.mean(np.diag(cm) / np.sum(cm, axis=1))),
             lambda: lambda cm: float(np.trace(cm) / np.sum(cm)), "per-class recalls"),
    "02.2": (lambda: _confusion_at(True), lambda: _confusion_at(False), "P(pos) > threshold"),
    "02.3": (lambda: _early_stopping_reference, lambda: lambda s, patience: (int(np.argmax(s)) + 1, len(s)), "expected"),
    "02.4": (lambda: lambda p, n: math.sqrt(p * (1 - p) / n), lambda: lambda p, n: math.sqrt(p * (1 - p)),
             "divide the variance by n"),
    "03.1": (lambda: lambda v, lists: sum(t in v for ts in lists for t in ts) / sum(len(ts) for ts in lists),
             lambda: lambda v, lists: (lambda s: sum(t in v for t in s) / len(s))({t for ts in lists for t in ts}),
             "distinct"),
    "03.2": (_bpe_prepared, _wrong_bpe, "not a BPE tokenizer"),
    "03.3": (lambda: _waste(True), lambda: _waste(False), "sort_window=1"),
    "03.4": (lambda: lambda s, m, tr: s[:m] if tr == "post" else s[max(len(s) - m, 0):],
             lambda: lambda s, m, tr: s[:m], "'pre' from the start"),
    "03.5": (lambda: _to_utf8("gb18030"), lambda: _to_utf8("latin-1"), "gbk"),
    "04.1": (lambda: _peephole(True), lambda: _peephole(False), "new cell state"),
    "04.2": (lambda: _cifg(True), lambda: _cifg(False), "1 − f_t"),
    "04.3": (lambda: lambda: _count_classifier(20000, 128, 128, 2),
             lambda: lambda: _count_classifier(20000, 128, 128, 2) + 4 * 128, "two LSTM bias vectors"),
    "04.4": (lambda: _gru(True), lambda: _gru(False), "*before*"),
    "04.5": (lambda: lambda T, f, i, c: T * i * c if f == 1 else i * c * (1 - f**T) / (1 - f),
             lambda: lambda T, f, i, c: i * c * (1 - f**T) / (1 - f) if f != 1 else math.nan, "0/0"),
    "05.1": (lambda: _keras_model(True), lambda: _keras_model(False), "mask_zero=True"),
    "05.2": (lambda: _unknown_share(False), lambda: _unknown_share(True), "per-review"),
    "05.3": (_history, _history_without_patience, "patience=2 stops after 2"),
    "06.1": (lambda: (_grad_psum_count, _grad_pmean), lambda: (_grad_pmean, _grad_pmean), "psum the gradient"),
    "06.2": (lambda: _shard_map_step(False), lambda: _shard_map_step(True), "too large"),
    "06.3": (lambda: lambda: 4 * _allreduce_values(), lambda: _allreduce_values, "4 bytes each"),
    "06.4": (lambda: lambda lr, b0, b, rule: lr * b / b0 if rule == "linear" else lr * math.sqrt(b / b0),
             lambda: lambda lr, b0, b, rule: lr * b / b0, "√"),
}


def test_cases_cover_tutorials_01_to_06():
    mine = {k for k in course.exercises() if k[:2] in {"01", "02", "03", "04", "05", "06"}}
    assert mine == set(CASES)


@pytest.mark.parametrize("exercise_id", sorted(CASES))
def test_checker_accepts_reference_and_rejects_wrong(exercise_id):
    reference, wrong, phrase = CASES[exercise_id]
    right = course.check(exercise_id, reference(), quiet=True)
    assert right.ok, right.message
    result = course.check(exercise_id, wrong(), quiet=True)
    assert not result.ok
    assert phrase in result.message, result.message
    assert not result.message.startswith("your code raised"), result.message
