"""The text classifier: the document's default model, pooling, embeddings path, padding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstmjax
from lstmjax.nn.classifier import pool

IDS = jnp.array([[5, 7, 9, 2, 0, 0], [3, 4, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]], jnp.int32)
LENGTHS = jnp.array([4, 2, 0], jnp.int32)


def test_default_is_the_documents_model():
    model = lstmjax.TextClassifier(vocab_size=20000, num_classes=2)
    variables = model.init(jax.random.key(0), IDS)
    shapes = jax.tree.map(jnp.shape, variables["params"])
    assert shapes["embedding"]["embedding"] == (20000, 128)
    assert shapes["recurrent"] == {"layer_0_forward": {"W_x": (128, 512), "W_h": (128, 512), "b": (512,)}}
    assert shapes["dense"] == {"kernel": (128, 2), "bias": (2,)}
    # Keras's model.summary() for Embedding(20000,128) → LSTM(128) → Dense(2): 2,691,842 parameters.
    assert sum(x.size for x in jax.tree.leaves(variables["params"])) == 20000 * 128 + 4 * (128 * 128 + 128 * 128 + 128) + 128 * 2 + 2


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_does_not_change_logits(cell, pooling, bidirectional):
    """Extra right padding leaves every logit unchanged, for all cells and poolings."""
    model = lstmjax.TextClassifier(vocab_size=12, num_classes=3, embed_dim=8, hidden_size=8, cell=cell,
                                   pooling=pooling, bidirectional=bidirectional, num_layers=2)
    variables = model.init(jax.random.key(0), IDS)
    apply = jax.jit(model.apply)
    logits = apply(variables, IDS, LENGTHS)
    padded = jnp.pad(IDS, ((0, 0), (0, 3)))
    np.testing.assert_allclose(apply(variables, padded, LENGTHS), logits, atol=1e-6)
    # lengths inferred from PAD = 0
    np.testing.assert_allclose(apply(variables, IDS), logits, atol=1e-6)
    assert logits.shape == (3, 3) and logits.dtype == jnp.float32


def test_last_pooling_uses_final_states():
    model = lstmjax.TextClassifier(vocab_size=12, num_classes=2, embed_dim=8, hidden_size=8, bidirectional=True)
    variables = model.init(jax.random.key(0), IDS)
    e = model.apply(variables, IDS, method=model.embed)
    rnn = lstmjax.LSTM(8, bidirectional=True)
    _, (h_n, _) = rnn.apply({"params": variables["params"]["recurrent"]}, e, LENGTHS)
    features = jnp.concatenate([h_n[0], h_n[1]], axis=-1)
    dense = variables["params"]["dense"]
    np.testing.assert_allclose(model.apply(variables, IDS, LENGTHS), features @ dense["kernel"] + dense["bias"], atol=1e-6)


def test_pool_reference():
    y = jnp.asarray(np.random.default_rng(0).normal(size=(3, 6, 4)), jnp.float32)
    lengths = jnp.array([6, 2, 0], jnp.int32)
    y = jnp.where(jnp.arange(6)[None, :, None] < lengths[:, None, None], y, 0.0)
    mean, mx = pool(y, lengths, "mean"), pool(y, lengths, "max")
    np.testing.assert_allclose(mean[0], y[0].mean(0), atol=1e-6)
    np.testing.assert_allclose(mean[1], y[1, :2].mean(0), atol=1e-6)
    np.testing.assert_allclose(mx[1], y[1, :2].max(0), atol=1e-6)
    np.testing.assert_array_equal(mean[2], 0.0)
    np.testing.assert_array_equal(mx[2], 0.0)
    with pytest.raises(ValueError, match="pooling must be"):
        pool(y, lengths, "median")


def test_gradients_wrt_embeddings():
    """The attribution path: logits are differentiable w.r.t. the embeddings; padding gets zero."""
    model = lstmjax.TextClassifier(vocab_size=12, num_classes=2, embed_dim=8, hidden_size=8)
    variables = model.init(jax.random.key(0), IDS)
    e = model.apply(variables, IDS, method=model.embed)

    def score(e):
        return model.apply(variables, e, LENGTHS, method=model.logits_from_embeddings)[:, 1].sum()

    g = jax.grad(score)(e)
    assert g.shape == e.shape
    assert float(jnp.abs(g[0, :4]).sum()) > 0
    np.testing.assert_array_equal(g[0, 4:], 0.0)
    np.testing.assert_array_equal(g[2], 0.0)


def test_dropout_needs_rng_and_is_off_in_eval():
    model = lstmjax.TextClassifier(vocab_size=12, num_classes=2, embed_dim=8, hidden_size=8,
                                   embed_dropout=0.5, output_dropout=0.5)
    variables = model.init(jax.random.key(0), IDS)
    det = model.apply(variables, IDS)
    train = model.apply(variables, IDS, deterministic=False, rngs={"dropout": jax.random.key(3)})
    assert not np.allclose(det, train)
    np.testing.assert_array_equal(det, model.apply(variables, IDS, deterministic=True))


def test_predict_proba_sums_to_one():
    model = lstmjax.TextClassifier(vocab_size=12, num_classes=4, embed_dim=8, hidden_size=8)
    variables = model.init(jax.random.key(0), IDS)
    p = model.apply(variables, IDS, method=model.predict_proba)
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-6)


def test_bad_config_and_input():
    with pytest.raises(ValueError, match="cell must be"):
        lstmjax.TextClassifier(vocab_size=12, num_classes=2, cell="transformer").init(jax.random.key(0), IDS)
    with pytest.raises(ValueError, match="pooling must be"):
        lstmjax.TextClassifier(vocab_size=12, num_classes=2, pooling="sum").init(jax.random.key(0), IDS)
    model = lstmjax.TextClassifier(vocab_size=12, num_classes=2, embed_dim=4, hidden_size=4)
    variables = model.init(jax.random.key(0), IDS)
    with pytest.raises(TypeError, match="token_ids must be integers"):
        model.apply(variables, IDS.astype(jnp.float32))
    with pytest.raises(ValueError, match="token_ids must be"):
        model.apply(variables, IDS[0])
