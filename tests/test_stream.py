"""Streaming inference: a text read in chunks, the recurrent state carried, equals the text read whole."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstmjax import TextClassifier

B, T = 3, 11
LENGTHS = np.array([11, 6, 0], np.int32)  # a full row, a shorter one (its last chunks are padding), an empty one


def _ids():
    ids = np.asarray(jax.random.randint(jax.random.key(1), (B, T), 1, 30), np.int32)
    return np.where(np.arange(T)[None, :] < LENGTHS[:, None], ids, 0)


def _chunked(model, variables, ids, sizes):
    """Feed ``ids`` in chunks of ``sizes`` (0: an empty chunk), each row's lengths clipped to the chunk."""
    state, start, logits = None, 0, None
    for size in sizes:
        chunk = ids[:, start:start + size]
        lengths = np.clip(LENGTHS - start, 0, size).astype(np.int32)
        logits, state = model.apply(variables, chunk, lengths, state, method="stream")
        start += size
    assert start == ids.shape[1]
    return logits, state


@pytest.mark.parametrize("cell, pooling, num_layers", [("lstm", "last", 1), ("gru", "mean", 2), ("rnn", "max", 1)])
def test_stream_in_chunks_equals_whole(cell, pooling, num_layers):
    model = TextClassifier(vocab_size=30, num_classes=3, embed_dim=5, hidden_size=4, cell=cell, pooling=pooling,
                           num_layers=num_layers)
    ids = _ids()
    variables = model.init(jax.random.key(0), ids)
    whole = model.apply(variables, ids, LENGTHS)
    one_logits, one_state = _chunked(model, variables, ids, [T])
    np.testing.assert_allclose(one_logits, whole, atol=1e-5, rtol=1e-5)
    # the carry is the stack's final state on the whole text (h_n of the top layer for 'last', all layers here)
    embedded = model.apply(variables, ids, method="embed")
    _, final = model.apply(variables, embedded, LENGTHS, method=lambda m, x, n: m.recurrent(x, n))
    for a, b in zip(jax.tree.leaves(one_state["carry"]), jax.tree.leaves(final), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    logits, state = _chunked(model, variables, ids, [3, 0, 1, 5, 2])  # odd sizes, an empty chunk, padding-only
    np.testing.assert_allclose(logits, whole, atol=1e-5, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(one_state), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
    assert state["count"].tolist() == LENGTHS.tolist()


def test_stream_refuses_bidirectional():
    model = TextClassifier(vocab_size=30, num_classes=2, embed_dim=4, hidden_size=4, bidirectional=True)
    with pytest.raises(ValueError, match="stream needs a unidirectional model"):  # refused before any parameter
        model.apply({"params": {}}, jnp.ones((1, 3), jnp.int32), None, None, method="stream")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory without training: an initialised model's checkpoint beside its text files."""
    from lstmjax.app import stages
    from lstmjax.app.config import Config
    from lstmjax.app.rundir import save_run_files
    from lstmjax.data import Vocab, get_tokenizer
    from lstmjax.training import Checkpointer

    d = tmp_path_factory.mktemp("stream") / "run"
    config = Config(hidden=6, embed_dim=5, max_len=64, pooling="mean")
    tokenizer = get_tokenizer("english")
    texts = ["a gorgeous moving film", "a dull and tired mess", "the cast is fine but the plot drags"]
    vocab = Vocab.build([tokenizer(t) for t in texts], tokenizer=tokenizer)
    save_run_files(d, config, vocab, tokenizer, ("neg", "pos"))
    model = stages.build_model(config, len(vocab), 2)
    state = stages.initial_state(config, model, stages.make_optimizer(config, None), jax.random.key(3))
    Checkpointer(d).save(1, state, {})
    return d


def test_predictor_stream_equals_predict_proba(run_dir):
    from lstmjax.app.predictor import Predictor

    predictor = Predictor(run_dir)
    text = "the cast is fine but the plot drags a dull and tired mess with an unknown word"
    chunks = ["the cast is fine", "", " but the plot drags a dull and tired", " mess with an", " unknown word"]
    steps = list(predictor.stream(chunks))
    assert len(steps) == len(chunks)
    np.testing.assert_allclose(steps[-1], predictor.predict_proba([text])[0], atol=1e-6)
    np.testing.assert_allclose(steps[0], predictor.predict_proba([chunks[0]])[0], atol=1e-6)
    np.testing.assert_array_equal(steps[1], steps[0])  # an empty chunk changes nothing
    with pytest.raises(TypeError, match="not one string"):
        next(predictor.stream(text))
