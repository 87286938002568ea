"""Pretraining (§6): BERT's masking rule, the language model's loss against a Python loop, losses that fall,
the encoder handed over to a classifier (exactly, with a new head), mismatches named, and the CLI end to end."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstmjax.app.cli import main
from lstmjax.app.config import Config, ConfigError
from lstmjax.app.pretrain import (
    Pretrained,
    encoder_model,
    implied_config,
    load_pretrained,
    pretrain,
)
from lstmjax.app.pretrain_config import PretrainConfig
from lstmjax.data import Vocab
from lstmjax.nn import TextClassifier, TransformerClassifier
from lstmjax.nn.pretraining import MaskedTokenModel, NextTokenModel
from lstmjax.training import CheckpointError, create_train_state, make_optimizer
from lstmjax.training.pretrain import (
    EncoderMismatch,
    init_encoder,
    mask_tokens,
    masked_token_step,
    next_token_loss,
    next_token_step,
)

TINY = {"embed_dim": 8, "hidden": 8, "max_len": 16, "vocab_size": 300, "batch_size": 32}


# --------------------------------------------------------------------------------------------- masking


def test_mask_tokens_proportions_and_padding():
    lengths = jnp.asarray(np.random.default_rng(0).integers(0, 200, 256), jnp.int32)  # some texts empty
    ids = jnp.where(jnp.arange(200)[None] < lengths[:, None], 7, 0).astype(jnp.int32)  # (256, 200)
    out = jax.jit(functools.partial(mask_tokens, vocab_size=5000))(jax.random.key(3), ids, lengths)
    valid = np.asarray(ids != 0)
    chosen, masked = np.asarray(out["chosen"]), np.asarray(out["masked"])
    replaced = chosen & ~masked & (np.asarray(out["token_ids"]) != 7)
    kept = chosen & ~masked & ~replaced
    assert not (chosen & ~valid).any(), "padding is never chosen"
    assert (np.asarray(out["token_ids"])[~valid] == 0).all() and not masked[~valid].any()
    assert abs(chosen.sum() / valid.sum() - 0.15) < 0.01
    n = chosen.sum()
    assert abs(masked.sum() / n - 0.8) < 0.02 and abs(replaced.sum() / n - 0.1) < 0.02
    assert abs(kept.sum() / n - 0.1) < 0.02
    assert (np.asarray(out["token_ids"])[replaced] >= 2).all(), "random replacements are never PAD or UNK"
    np.testing.assert_array_equal(out["targets"], ids)
    again = mask_tokens(jax.random.key(3), ids, lengths, 5000)
    np.testing.assert_array_equal(again["chosen"], chosen)  # a function of the key


# --------------------------------------------------------------------------------------------- losses


def test_next_token_loss_equals_a_python_loop():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 5, 7)).astype(np.float32)
    lengths = np.array([5, 2, 1], np.int32)
    ids = rng.integers(2, 7, (3, 5)).astype(np.int32)
    ids[np.arange(5)[None] >= lengths[:, None]] = 0
    total, count = 0.0, 0
    for b in range(3):
        for t in range(lengths[b] - 1):  # the output at t predicts token t + 1
            z = logits[b, t].astype(np.float64)
            total += np.log(np.exp(z - z.max()).sum()) + z.max() - z[ids[b, t + 1]]
            count += 1
    loss, sums = jax.jit(next_token_loss)(jnp.asarray(logits), jnp.asarray(ids), jnp.asarray(lengths))
    assert int(sums["count"]) == count == 5
    np.testing.assert_allclose(float(loss), total / count, rtol=1e-5)
    np.testing.assert_allclose(float(sums["loss_sum"]), total, rtol=1e-5)


CORPUS = np.array([[3, 4, 5, 6, 7, 0], [3, 4, 5, 0, 0, 0], [8, 9, 3, 4, 5, 6], [9, 3, 4, 0, 0, 0]], np.int32)


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_pretraining_loss_falls(kind):
    batch = {"token_ids": jnp.asarray(CORPUS), "lengths": jnp.asarray((CORPUS != 0).sum(1).astype(np.int32))}
    if kind == "lstm":
        model, step = NextTokenModel(TextClassifier(10, 2, embed_dim=16, hidden_size=16)), next_token_step
    else:
        model = MaskedTokenModel(TransformerClassifier(10, 2, embed_dim=16, max_len=8, num_heads=2, ff_size=32))
        step = functools.partial(masked_token_step, vocab_size=10, rate=0.5)
    state = create_train_state(model, jax.random.key(0), make_optimizer("adam", 1e-2))
    step = jax.jit(step)
    losses = []
    for i in range(40):
        state, sums = step(state, batch, jax.random.key(i))
        losses.append(float(sums["loss_sum"]) / max(int(sums["count"]), 1))
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:5]), losses  # masks are drawn anew each step: noisy


# --------------------------------------------------------------------------------------------- the hand-over


def _params(module, key, *args):
    return module.init(jax.random.key(key), jnp.ones((1, 4), jnp.int32), *args)["params"]


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_init_encoder_loads_exactly_the_encoder(kind):
    if kind == "lstm":
        clf = TextClassifier(20, 3, embed_dim=8, hidden_size=8, num_layers=2)
        pretrained = _params(NextTokenModel(clf), 1)
    else:
        clf = TransformerClassifier(20, 3, embed_dim=8, max_len=8, num_heads=2, ff_size=16, pooling="cls")
        pretrained = _params(MaskedTokenModel(clf), 1)
    fresh = _params(clf, 0)
    params = init_encoder(fresh, pretrained)
    encoder = pretrained["encoder"]
    assert set(encoder) == set(fresh) - {"dense"}
    for key in encoder:
        jax.tree.map(np.testing.assert_array_equal, params[key], encoder[key])
    jax.tree.map(np.testing.assert_array_equal, params["dense"], fresh["dense"])  # the head stays new
    assert clf.apply({"params": params}, jnp.ones((2, 4), jnp.int32)).shape == (2, 3)


@pytest.mark.parametrize(("source", "target", "named"), [
    pytest.param(TextClassifier(20, 2, embed_dim=8, hidden_size=8),
                 TransformerClassifier(20, 2, embed_dim=8, max_len=8, num_heads=2, ff_size=16), "recurrent",
                 id="lstm-into-transformer"),
    pytest.param(TextClassifier(20, 2, embed_dim=8, hidden_size=8), TextClassifier(20, 2, embed_dim=8, hidden_size=16),
                 "shapes differ", id="other-hidden-size"),
    pytest.param(TextClassifier(20, 2, embed_dim=8, hidden_size=8), TextClassifier(30, 2, embed_dim=8, hidden_size=8),
                 "['embedding']['embedding']: pretrained (20, 8), this model (30, 8)", id="other-vocabulary"),
    pytest.param(TextClassifier(20, 2, embed_dim=8, hidden_size=8, num_layers=2),
                 TextClassifier(20, 2, embed_dim=8, hidden_size=8), "layer_1_forward", id="other-layers"),
])
def test_init_encoder_names_a_mismatch(source, target, named):
    head = NextTokenModel(source) if isinstance(source, TextClassifier) else MaskedTokenModel(source)
    with pytest.raises(EncoderMismatch, match="does not fit") as e:
        init_encoder(_params(target, 0), _params(head, 1))
    assert named in str(e.value)


def test_implied_config_takes_the_encoder_and_refuses_a_clash():
    p = Pretrained(None, PretrainConfig(hidden=32, max_len=40, model="gru"), Vocab(("<pad>", "<unk>", "a", "b")),
                   None, None, 1)
    c = implied_config(Config(epochs=3, lr=0.01), p)
    assert (c.cell, c.hidden, c.max_len, c.vocab_size, c.epochs, c.lr) == ("gru", 32, 40, 4, 3, 0.01)
    with pytest.raises(ConfigError, match="hidden 64 .*32"):
        implied_config(Config(hidden=64), p)
    with pytest.raises(ConfigError, match="cell"):
        implied_config(Config(cell="lstm"), p, given={"cell"})


def test_encoder_model_follows_the_pretraining_config():
    model = encoder_model(PretrainConfig(model="transformer", embed_dim=16, heads=4, layers=2, max_len=32), 50, 3,
                          fine_tune=Config(output_dropout=0.2))
    assert isinstance(model, TransformerClassifier)
    assert (model.num_layers, model.num_heads, model.max_len, model.num_classes, model.output_dropout) == (
        2, 4, 32, 3, 0.2)


# --------------------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


@pytest.mark.parametrize("model", ["lstm", "transformer"])
def test_cli_pretrain_then_fine_tune_then_evaluate(model, tmp_path, cache, capsys):
    pre, run = tmp_path / "pre", tmp_path / "run"
    extra = ["--heads", "2", "--ff-size", "16"] if model == "transformer" else []
    assert main(["pretrain", "--model", model, "--steps", "3", "--embed-dim", "8", "--hidden", "8", "--max-len", "16",
                 "--vocab-size", "300", "--batch-size", "32", *extra, "--out", str(pre), "--cache-dir", cache]) == 0
    assert {"pretrain.json", "vocab.json", "tokenizer.json", "metrics.json", "checkpoints"} <= {
        p.name for p in pre.iterdir()}
    pretrained = load_pretrained(pre)
    assert pretrained.step == 3 and pretrained.config.model == model
    assert main(["train", "--init-from", str(pre), "--epochs", "1", "--batch-size", "64", "--out", str(run),
                 "--cache-dir", cache]) == 0
    out = capsys.readouterr().out
    assert "fine-tuning the" in out and "new head: dense" in out
    saved = json.loads((run / "config.json").read_text())
    assert saved["max_len"] == 16 and saved["vocab_size"] == 300
    assert json.loads((run / "vocab.json").read_text()) == json.loads((pre / "vocab.json").read_text())
    assert main(["evaluate", str(run)]) == 0
    assert "accuracy" in capsys.readouterr().out


def test_cli_init_from_errors(tmp_path, cache, capsys):
    pre = tmp_path / "pre"
    pretrain(PretrainConfig(steps=1, **TINY), pre, cache_dir=cache, log=lambda *a: None)
    assert main(["train", "--init-from", str(pre), "--hidden", "64", "--out", str(tmp_path / "r1"),
                 "--cache-dir", cache]) == 2
    assert "--init-from" in capsys.readouterr().err
    assert main(["train", "--init-from", str(tmp_path / "nothing"), "--out", str(tmp_path / "r2")]) == 2
    assert "no such pretraining run" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="not a pretraining run"):
        (tmp_path / "clf").mkdir()
        (tmp_path / "clf" / "labels.txt").write_text("neg\npos\n")
        load_pretrained(tmp_path / "clf")


def test_start_state_with_init_from_loads_exactly_the_encoder(tmp_path, cache):
    """The stages ``lstmjax train --init-from`` runs: the encoder's arrays as pretrained, the head as a fresh model's."""
    from lstmjax.app import stages

    pre = pretrain(PretrainConfig(steps=2, **TINY), tmp_path / "pre", cache_dir=cache, log=lambda *a: None)
    run = stages.open_run(Config(init_from=str(tmp_path / "pre"), parallel="none"), tmp_path / "run",
                          cache_dir=cache, log=lambda *a: None)
    assert (run.config.hidden, run.config.max_len, run.config.vocab_size) == (8, 16, len(pre.vocab))
    prepared = stages.prepare_data(run, stages.load_data(run)[0])
    assert prepared.vocab.tokens == pre.vocab.tokens
    model, state, _ = stages.start_state(run, prepared)
    for key, arrays in pre.params["encoder"].items():
        jax.tree.map(np.testing.assert_array_equal, state.params[key], arrays)
    fresh = stages.initial_state(run.config, model, state.tx, jax.random.key(run.config.seed))
    jax.tree.map(np.testing.assert_array_equal, state.params["dense"], fresh.params["dense"])
