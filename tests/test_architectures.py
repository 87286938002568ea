"""The other architectures of §2.2 (TextCNN, the Transformer encoder) and attention pooling.

Parity with PyTorch (``torch.nn.TransformerEncoderLayer(norm_first=True, batch_first=True)`` and
``torch.nn.Conv1d`` + max-pool) with the same weights: outputs and gradients (inputs and every
weight) within 1e-5 in float32, with padding, compared at the valid positions only. Then bad
inputs, degenerate texts (length 0 and 1), padding invariance, jit and grad.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _parity import ATOL, assert_close

from lstmjax.nn import (
    AttentionPooling,
    TextClassifier,
    TextCNN,
    TransformerBlock,
    TransformerClassifier,
    window_counts,
)

D, HEADS, FF = 8, 2, 16
LENGTHS = np.array([5, 3, 1, 4], np.int32)  # no empty text: PyTorch's attention gives NaN for one


# --------------------------------------------------------------------------------------------- Transformer ↔ PyTorch


def _torch_layer(activation: str):
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(D, HEADS, FF, dropout=0.0, activation=activation, norm_first=True,
                                             batch_first=True)
    layer.train()  # no fast path: the plain maths, which also takes gradients
    with torch.no_grad():  # non-trivial LayerNorm parameters and biases
        for p in (layer.norm1.weight, layer.norm2.weight):
            p.add_(0.3 * torch.randn_like(p))
        for p in (layer.norm1.bias, layer.norm2.bias, layer.self_attn.in_proj_bias, layer.self_attn.out_proj.bias):
            p.copy_(0.2 * torch.randn_like(p))
    return layer


def _from_torch(layer) -> dict:
    """PyTorch's TransformerEncoderLayer weights in TransformerBlock's layout."""
    t = {k: v.detach().numpy() for k, v in layer.state_dict().items()}
    hd = D // HEADS
    w_q, w_k, w_v = np.split(t["self_attn.in_proj_weight"], 3)  # each (D_out, D_in)
    b_q, b_k, b_v = np.split(t["self_attn.in_proj_bias"], 3)
    attention = {name: {"kernel": w.T.reshape(D, HEADS, hd), "bias": b.reshape(HEADS, hd)}
                 for name, w, b in (("query", w_q, b_q), ("key", w_k, b_k), ("value", w_v, b_v))}
    attention["out"] = {"kernel": t["self_attn.out_proj.weight"].T.reshape(HEADS, hd, D),
                        "bias": t["self_attn.out_proj.bias"]}
    return jax.tree.map(jnp.asarray, {
        "attention": attention,
        "norm_1": {"scale": t["norm1.weight"], "bias": t["norm1.bias"]},
        "norm_2": {"scale": t["norm2.weight"], "bias": t["norm2.bias"]},
        "ff_in": {"kernel": t["linear1.weight"].T, "bias": t["linear1.bias"]},
        "ff_out": {"kernel": t["linear2.weight"].T, "bias": t["linear2.bias"]},
    })


def _grads_to_torch_layout(g: dict) -> dict:
    """TransformerBlock's gradients named and shaped as PyTorch's parameters."""
    a = g["attention"]
    return {
        "self_attn.in_proj_weight": np.concatenate([np.asarray(a[n]["kernel"]).reshape(D, D).T
                                                    for n in ("query", "key", "value")]),
        "self_attn.in_proj_bias": np.concatenate([np.asarray(a[n]["bias"]).reshape(D) for n in ("query", "key", "value")]),
        "self_attn.out_proj.weight": np.asarray(a["out"]["kernel"]).reshape(D, D).T,
        "self_attn.out_proj.bias": a["out"]["bias"],
        "norm1.weight": g["norm_1"]["scale"], "norm1.bias": g["norm_1"]["bias"],
        "norm2.weight": g["norm_2"]["scale"], "norm2.bias": g["norm_2"]["bias"],
        "linear1.weight": np.asarray(g["ff_in"]["kernel"]).T, "linear1.bias": g["ff_in"]["bias"],
        "linear2.weight": np.asarray(g["ff_out"]["kernel"]).T, "linear2.bias": g["ff_out"]["bias"],
    }


@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_transformer_block_matches_torch(activation):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(len(LENGTHS), 6, D)).astype(np.float32)
    valid = np.arange(6)[None] < LENGTHS[:, None]  # (B, T)
    w = rng.normal(size=x.shape).astype(np.float32) * valid[..., None]  # a loss that reads valid positions only
    layer = _torch_layer(activation)
    block = TransformerBlock(HEADS, FF, activation=activation)
    params = _from_torch(layer)

    def loss(params, x):
        y = block.apply({"params": params}, x, jnp.asarray(valid))
        return jnp.sum(y * w), y

    (_, y), (g_params, g_x) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(params, jnp.asarray(x))

    x_t = torch.tensor(x, requires_grad=True)
    y_t = layer(x_t, src_key_padding_mask=torch.tensor(~valid))
    (y_t * torch.tensor(w)).sum().backward()
    assert_close(np.asarray(y)[valid], y_t.detach().numpy()[valid], "outputs at valid positions")
    assert_close(np.asarray(g_x)[valid], x_t.grad.numpy()[valid], "d loss / d inputs at valid positions")
    assert_close(np.asarray(g_x)[~valid], np.zeros_like(x[~valid]), "padding has no gradient")
    for name, g in _grads_to_torch_layout(g_params).items():
        assert_close(g, dict(layer.named_parameters())[name].grad.numpy(), f"d loss / d {name}")


# --------------------------------------------------------------------------------------------- TextCNN ↔ PyTorch


def _cnn(widths=(2, 3), filters=5):
    model = TextCNN(vocab_size=30, num_classes=3, embed_dim=D, widths=widths, filters=filters)
    ids = jnp.ones((1, 6), jnp.int32)
    return model, model.init(jax.random.key(1), ids)


def _torch_conv_max(params: dict, width: int, x: np.ndarray, length: int) -> torch.Tensor:
    """One text through ``torch.nn.Conv1d`` (its tokens only, zero-padded to ``width`` if shorter), ReLU, max-pool."""
    conv = torch.nn.Conv1d(D, params["kernel"].shape[-1], width)
    with torch.no_grad():  # Flax (width, in, out) → PyTorch (out, in, width)
        conv.weight.copy_(torch.tensor(np.transpose(np.asarray(params["kernel"]), (2, 1, 0))))
        conv.bias.copy_(torch.tensor(np.asarray(params["bias"])))
    text = torch.tensor(x[:length].T[None])  # (1, E, ℓ)
    text = torch.nn.functional.pad(text, (0, max(0, width - length)))
    maps = torch.relu(conv(text))  # (1, F, windows)
    return torch.nn.functional.max_pool1d(maps, maps.shape[-1])[0, :, 0]  # (F,)


def test_cnn_conv_max_pool_matches_torch():
    model, variables = _cnn()
    x = np.random.default_rng(2).normal(size=(len(LENGTHS), 6, D)).astype(np.float32)
    ours = jax.jit(functools.partial(model.apply, method=model.conv_features))(variables, x, LENGTHS)
    for b, length in enumerate(LENGTHS):
        theirs = torch.cat([_torch_conv_max(variables["params"][f"conv_{i}"], w, x[b], int(length))
                            for i, w in enumerate(model.widths)])
        assert_close(ours[b], theirs.detach().numpy(), f"text {b} (length {length})")


def test_cnn_gradients_match_torch():
    model, variables = _cnn(widths=(3,), filters=4)
    x = np.random.default_rng(3).normal(size=(2, 5, D)).astype(np.float32)
    lengths = np.array([5, 2], np.int32)  # the second text is shorter than the width
    params = variables["params"]

    def loss(conv, x):
        p = {**params, "conv_0": conv}
        return jnp.sum(model.apply({"params": p}, x, lengths, method=model.conv_features) ** 2)

    g_conv, g_x = jax.jit(jax.grad(loss, argnums=(0, 1)))(params["conv_0"], jnp.asarray(x))
    conv = torch.nn.Conv1d(D, 4, 3)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(np.transpose(np.asarray(params["conv_0"]["kernel"]), (2, 1, 0))))
        conv.bias.copy_(torch.tensor(np.asarray(params["conv_0"]["bias"])))
    x_t = torch.tensor(x, requires_grad=True)
    total = 0
    for b, length in enumerate(lengths):
        text = torch.nn.functional.pad(x_t[b, :length].T[None], (0, max(0, 3 - int(length))))
        maps = torch.relu(conv(text))
        total = total + (torch.nn.functional.max_pool1d(maps, maps.shape[-1]) ** 2).sum()
    total.backward()
    assert_close(g_x, x_t.grad.numpy(), "d loss / d embeddings")
    assert_close(g_conv["kernel"], np.transpose(conv.weight.grad.numpy(), (2, 1, 0)), "d loss / d kernel")
    assert_close(g_conv["bias"], conv.bias.grad.numpy(), "d loss / d bias")


# --------------------------------------------------------------------------------------------- the classifiers


def _models():
    return {
        "cnn": TextCNN(30, 3, embed_dim=8, widths=(2, 3), filters=4),
        "transformer-cls": TransformerClassifier(30, 3, embed_dim=8, max_len=12, num_heads=2, ff_size=16),
        "transformer-mean": TransformerClassifier(30, 3, embed_dim=8, max_len=12, num_heads=2, ff_size=16,
                                                  pooling="mean", activation="relu"),
        "lstm-attention": TextClassifier(30, 3, embed_dim=8, hidden_size=8, pooling="attention"),
    }


MODELS = list(_models())


@pytest.fixture(params=MODELS)
def model_and_variables(request):
    model = _models()[request.param]
    return model, model.init(jax.random.key(0), jnp.ones((2, 5), jnp.int32))


def test_padding_does_not_change_the_logits(model_and_variables):
    model, variables = model_and_variables
    ids = jnp.array([[4, 5, 6, 0, 0], [7, 0, 0, 0, 0]], jnp.int32)
    more = jnp.pad(ids, ((0, 0), (0, 4)))
    apply = jax.jit(model.apply)
    assert_close(apply(variables, ids), apply(variables, more), "logits with 4 more PADs")
    alone = apply(variables, ids[1:, :1])
    assert_close(apply(variables, ids)[1], alone[0], "a length-1 text alone and in a padded batch")


def test_empty_texts_give_finite_logits_and_gradients(model_and_variables):
    model, variables = model_and_variables
    ids = jnp.array([[0, 0, 0], [4, 0, 0]], jnp.int32)
    logits = jax.jit(model.apply)(variables, ids)
    assert logits.shape == (2, 3) and bool(jnp.isfinite(logits).all())
    grads = jax.jit(jax.grad(lambda v: jnp.sum(model.apply(v, ids) ** 2)))(variables)
    assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads))


def test_embeddings_path_and_predict_proba(model_and_variables):
    model, variables = model_and_variables
    ids = jnp.array([[4, 5, 6], [7, 8, 0]], jnp.int32)
    lengths = jnp.array([3, 2], jnp.int32)
    e = model.apply(variables, ids, method=model.embed)
    via = model.apply(variables, e, lengths, method=model.logits_from_embeddings)
    assert_close(via, model.apply(variables, ids, lengths), "embed → logits_from_embeddings")
    p = model.apply(variables, ids, lengths, method=model.predict_proba)
    assert_close(p.sum(-1), np.ones(2, np.float32), "probabilities sum to 1")
    assert not model.uses_dropout


def test_bad_token_ids_and_lengths_are_named(model_and_variables):
    model, variables = model_and_variables
    with pytest.raises(ValueError, match=r"token_ids\[0, 1\] = 99"):
        model.apply(variables, jnp.array([[3, 99]], jnp.int32))
    with pytest.raises(ValueError, match=r"lengths\[0\] = 7"):
        model.apply(variables, jnp.array([[3, 4]], jnp.int32), jnp.array([7], jnp.int32))
    with pytest.raises(TypeError, match="float32"):
        model.apply(variables, jnp.array([[3.0, 4.0]]))


@pytest.mark.parametrize("make, message", [
    (lambda: TextCNN(10, 2, widths=(3, 0)), r"widths must be .* got \(3, 0\)"),
    (lambda: TextCNN(10, 2, filters=0), "filters must be >= 1; got 0"),
    (lambda: TransformerClassifier(10, 2, embed_dim=10, num_heads=4), "num_heads=4 must divide embed_dim=10"),
    (lambda: TransformerClassifier(10, 2, embed_dim=8, num_heads=2, pooling="max"), "pooling must be 'cls' or 'mean'.*'max'"),
    (lambda: TransformerClassifier(10, 2, embed_dim=8, num_heads=2, activation="tanh"), "activation .*'tanh'"),
    (lambda: TextClassifier(10, 2, pooling="attn"), "pooling must be .*'attention'; got 'attn'"),
])
def test_bad_options_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make().init(jax.random.key(0), jnp.ones((1, 4), jnp.int32))


def test_transformer_refuses_texts_longer_than_max_len():
    model = TransformerClassifier(10, 2, embed_dim=8, max_len=4, num_heads=2, ff_size=8)
    with pytest.raises(ValueError, match="6 time steps, more than max_len=4"):
        model.init(jax.random.key(0), jnp.ones((1, 6), jnp.int32))


def test_attention_weights_are_sown():
    model = _models()["transformer-cls"]
    ids = jnp.array([[4, 5, 6, 0], [7, 0, 0, 0]], jnp.int32)
    variables = model.init(jax.random.key(0), ids)
    _, sown = model.apply(variables, ids, mutable=["intermediates"])
    weights = sown["intermediates"]["blocks_1"]["attention"]["attention_weights"][0]  # (B, H, 1 + T, 1 + T)
    assert weights.shape == (2, 2, 5, 5)
    assert_close(weights.sum(-1), np.ones((2, 2, 5), np.float32), "each query's weights sum to 1")
    assert_close(weights[1, :, :, 2:], np.zeros((2, 5, 3), np.float32), "no weight on padding")

    rnn = _models()["lstm-attention"]
    variables = rnn.init(jax.random.key(0), ids)
    _, sown = rnn.apply(variables, ids, mutable=["intermediates"])
    alpha = sown["intermediates"]["attention"]["attention_weights"][0]  # (B, T)
    assert_close(alpha, np.array([[*alpha[0, :3], 0.0], [1.0, 0.0, 0.0, 0.0]], np.float32), "weights on valid steps")


def test_attention_pooling_equals_the_equations():
    h = np.random.default_rng(4).normal(size=(2, 4, 3)).astype(np.float32)
    lengths = np.array([3, 0], np.int32)
    module = AttentionPooling(size=5)
    variables = module.init(jax.random.key(0), h, lengths)
    p = variables["params"]
    s = np.tanh(h @ np.asarray(p["W"]["kernel"]) + np.asarray(p["W"]["bias"])) @ np.asarray(p["v"]["kernel"])[:, 0]
    a = np.exp(s[0, :3] - s[0, :3].max())
    a /= a.sum()
    z = jax.jit(module.apply)(variables, h, lengths)
    assert_close(z[0], a @ h[0, :3], "softmax over the 3 valid steps")
    assert_close(z[1], np.zeros(3, np.float32), "an empty text pools to zeros")


def test_window_counts():
    assert window_counts(jnp.array([6, 3, 2, 1, 0]), 3).tolist() == [4, 1, 1, 1, 0]
    with pytest.raises(ValueError, match="width must be >= 1; got 0"):
        window_counts(jnp.array([1]), 0)


def test_stream_refuses_attention_pooling():
    rnn = _models()["lstm-attention"]
    ids = jnp.ones((1, 3), jnp.int32)
    variables = rnn.init(jax.random.key(0), ids)
    with pytest.raises(ValueError, match="attention pooling"):
        rnn.apply(variables, ids, None, None, method="stream")


def test_dropout_trains_with_keys():
    model = TransformerClassifier(30, 2, embed_dim=8, max_len=8, num_heads=2, ff_size=8, dropout=0.5)
    ids = jnp.array([[4, 5, 6]], jnp.int32)
    variables = model.init(jax.random.key(0), ids)
    assert model.uses_dropout
    a = model.apply(variables, ids, deterministic=False, rngs={"dropout": jax.random.key(1)})
    b = model.apply(variables, ids, deterministic=False, rngs={"dropout": jax.random.key(2)})
    assert not np.allclose(a, b) and np.allclose(model.apply(variables, ids), model.apply(variables, ids))


assert ATOL == 1e-5  # the tolerance every comparison above uses


# --------------------------------------------------------------------------------------------- every --parallel layout


@pytest.mark.parametrize("name", ["cnn", "transformer"])
def test_pmap_mesh_and_one_device_agree(name, make_batch):
    """Two training steps (dropout on) under each layout of ``--parallel``: the same parameters.

    SGD, not Adam: the attention's key bias has a zero gradient in exact arithmetic (softmax ignores a
    shift), so Adam's g / √v turns its float noise, which depends on the summation order, into full steps.
    """
    from lstmjax.parallel import DataParallel
    from lstmjax.training import create_train_state, make_optimizer

    model = {"cnn": TextCNN(30, 3, embed_dim=8, widths=(2, 3), filters=4, embed_dropout=0.2, output_dropout=0.3),
             "transformer": TransformerClassifier(30, 3, embed_dim=8, max_len=8, num_heads=2, ff_size=8,
                                                  dropout=0.2)}[name]
    batches = [make_batch(i, n=16, t=6, vocab=30) for i in range(2)]
    results = {}
    for mode in ("none", "pmap", "mesh"):
        dp = DataParallel.create(mode, 1 if mode == "none" else 8)
        state = dp.put_state(create_train_state(model, jax.random.key(0), make_optimizer("sgd", 0.5)))
        step = dp.train_step()
        for batch in batches:
            state, _ = step(state, dp.put_batch(batch))
        results[mode] = dp.get_state(state).params
    for mode in ("pmap", "mesh"):
        for got, want in zip(jax.tree.leaves(results[mode]), jax.tree.leaves(results["none"])):
            np.testing.assert_allclose(got, want, atol=2e-5, rtol=0, err_msg=mode)


def test_nnx_twin_refuses_attention_pooling():
    from flax import nnx

    from lstmjax.nn import nnx as lstmjax_nnx

    with pytest.raises(ValueError, match="no attention pooling"):
        lstmjax_nnx.TextClassifier(10, 2, embed_dim=4, hidden_size=4, pooling="attention", rngs=nnx.Rngs(0))
