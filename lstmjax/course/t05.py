"""Tutorial 05 (the text classifier): checkers for its exercises."""

from __future__ import annotations

import functools
import math
import os
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from lstmjax.course._check import Wrong, check_share, exercise
from lstmjax.course._i18n import tr


@exercise("05.1", "A length-aware (masked) Keras model")
def _masked_keras(build):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    try:
        import keras
    except ImportError:  # pragma: no cover - the tutorial's extra installs it
        raise Wrong(tr("this exercise needs Keras 3: pip install 'lstmjax[test]'")) from None
    from lstmjax.data.batching import pad_sequences
    from lstmjax.nn.classifier import TextClassifier
    from lstmjax.nn.interop import to_keras

    V, E, H, C, T = 50, 8, 6, 3, 12
    model = TextClassifier(vocab_size=V, num_classes=C, embed_dim=E, hidden_size=H)
    rng = np.random.default_rng(0)
    seqs = [rng.integers(2, V, int(n)).tolist() for n in rng.integers(1, T + 1, 16)]
    ids, lengths = pad_sequences(seqs, T)  # right padding with PAD = 0, as lstmjax expects
    params = model.init(jax.random.key(0), jnp.asarray(ids), jnp.asarray(lengths))["params"]
    k = build(V, E, H, C, T)
    if k is None:
        raise Wrong(tr("your function returned None (is its body still `...`?)."))
    layers = [layer for layer in k.layers if not isinstance(layer, keras.layers.InputLayer)]
    if len(layers) != 3:
        raise Wrong(tr("expected Embedding → LSTM → Dense, got {layers}.", layers=[type(la).__name__ for la in layers]))
    emb, lstm, dense = layers
    if not getattr(emb, "mask_zero", False):
        raise Wrong(tr("the Embedding must set mask_zero=True, or Keras runs the LSTM over the padding too."))
    emb.set_weights([np.asarray(params["embedding"]["embedding"])])
    to_keras({"params": params["recurrent"]}, lstm)
    dense.set_weights([np.asarray(params["dense"]["kernel"]), np.asarray(params["dense"]["bias"])])
    ours = np.asarray(model.apply({"params": params}, jnp.asarray(ids), jnp.asarray(lengths),
                                  method=model.predict_proba))
    theirs = np.asarray(k.predict(ids, verbose=0))
    if theirs.shape != ours.shape:
        raise Wrong(tr("the model outputs shape {got}, expected {want} (softmax over classes).", got=theirs.shape,
                       want=ours.shape))
    if not np.allclose(theirs, ours, atol=1e-4):
        raise Wrong(tr("probabilities differ from lstmjax's (with lengths) by up to {error:.2e}: "
                       "Dense(num_classes, activation='softmax') after LSTM(units)?", error=np.abs(theirs - ours).max()))
    return tr("masked Keras == lstmjax with lengths on right-padded reviews.")


@functools.lru_cache(maxsize=1)
def _small_english():
    """1,500 shuffled reviews of each split of the built-in set, prepared with the English tokenizer."""
    from lstmjax.data.batching import prepare
    from lstmjax.data.loading import TextDataset, load_dataset

    data = load_dataset("builtin", cache_dir=tempfile.mkdtemp(prefix="lstmjax-course-"))
    small = {name: ds.shuffle(seed=0).select(range(min(1500, ds.num_rows))) for name, ds in data.splits.items()}
    return prepare(TextDataset(type(data.splits)(small), data.label_names), "english")


@exercise("05.2", "The share of unknown tokens in a split")
def _unknown_share(fn):
    from lstmjax.data.tokenizer import get_tokenizer
    from lstmjax.data.vocab import UNK_ID

    prepared = _small_english()
    english = get_tokenizer("english")
    for split in ("test", "validation", "train"):
        got = fn(prepared, split)
        if got is None:
            raise Wrong(tr("your function returned None (is its body still `...`?)."))
        want = 1 - prepared.vocab.coverage([english(t) for t in prepared[split]["text"][:]])
        rows = [np.asarray(r) for r in prepared[split]["token_ids"][:]]
        check_share(got, want, where=tr("on the {split} split", split=split), digits=5,
                    likely_mistake=float(np.mean([np.mean(r == UNK_ID) for r in rows if len(r)])),
                    hint=tr(" That is the mean of per-review shares: count tokens over the whole split instead."))
    return tr("unknown share = 1 − coverage; 0 on the training split, whose tokens built the vocabulary.")


@exercise("05.3", "Early stopping on the document's recipe")
def _early_stopped(answer, *, validation_data=None, max_length=None):
    from lstmjax.training.loop import evaluate

    if not (isinstance(answer, tuple) and len(answer) == 2):
        raise Wrong(tr("pass the pair (state, history) that lstmjax.fit returned: state_es, early_history = fit(...)."))
    state, history = answer
    if state is None and history is None:
        raise Wrong(tr("no answer yet: the cell still holds its placeholders (None, None)."))
    if not isinstance(history, dict) or "loss" not in history:
        raise Wrong(tr("the second element should be the history dict that lstmjax.fit returned."))
    if "val_loss" not in history:
        raise Wrong(tr("the history has no validation scores: pass validation_data=... to fit."))
    if history.get("best_epoch") is None:
        raise Wrong(tr("no best epoch recorded: train with callbacks=[EarlyStopping(2, monitor='loss')]."))
    val_loss = list(history["val_loss"])
    best = history["best_epoch"]
    if best != int(np.argmin(val_loss)) + 1:
        raise Wrong(tr("the best epoch is {best}, but the lowest validation loss is at epoch {lowest}: "
                       "monitor='loss' (the default watches accuracy).", best=best, lowest=int(np.argmin(val_loss)) + 1))
    run = len(history["loss"])
    if run - best > 2:
        raise Wrong(tr("training ran {extra} epochs past the best one; patience=2 stops after 2.", extra=run - best))
    if run - best < 2 and history.get("stopped_early"):
        raise Wrong(tr("stopped earlier than patience=2 allows: was patience set to 1?"))
    if validation_data is None:
        raise Wrong(tr("pass the validation split the model was trained with: course.check('05.3', (state_es, "
                       "early_history), validation_data=prepared['validation'], max_length=max_sequence_length)."))
    if not hasattr(state, "params") or not hasattr(state, "apply_fn"):
        raise Wrong(tr("the first element should be the TrainState that fit returned, got {kind}.",
                       kind=type(state).__name__))
    measured = float(evaluate(state, validation_data, max_length=max_length)["loss"])
    if not math.isclose(measured, val_loss[best - 1], rel_tol=1e-4, abs_tol=1e-5):
        raise Wrong(tr("the state's validation loss is {measured:.4f}, but the history says {recorded:.4f} at the "
                       "best epoch {best}: pass the state and history of the same fit (which restores the best "
                       "epoch's parameters), and the validation split and max_length it used.", measured=measured,
                       recorded=val_loss[best - 1], best=best))
    where = tr("then stopped early") if history.get("stopped_early") else tr("the last epoch was the best")
    return tr("best validation loss {loss:.4f} at epoch {best} of {run} ({where}); the state is that epoch's model "
              "(its validation loss is the recorded one).", loss=min(val_loss), best=best, run=run, where=where)
