"""fit / evaluate / checkpoints: exact evaluation, early stopping, resume equals uninterrupted."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm

from lstmjax import TextClassifier
from lstmjax.app.config import Config
from lstmjax.app.rundir import check_compatible, load_run_files, save_run_files
from lstmjax.data.tokenizer import get_tokenizer
from lstmjax.data.vocab import Vocab
from lstmjax.training.callbacks import Checkpointing, EarlyStopping
from lstmjax.training.checkpoint import Checkpointer, CheckpointError
from lstmjax.training.loop import TrainingError, evaluate, fit
from lstmjax.training.state import create_train_state, make_optimizer

MODEL = TextClassifier(vocab_size=40, num_classes=3, embed_dim=8, hidden_size=8, embed_dropout=0.1)


def _data(n=50, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    ids = [list(rng.integers(3, 40, rng.integers(1, 9))) + [int(l) + 2] for l in labels]  # label leaks as a token
    return {"token_ids": ids, "label": [int(l) for l in labels]}


def _state(seed=0, lr=1e-2):
    return create_train_state(MODEL, jax.random.key(seed), make_optimizer("adam", lr))


def _assert_same(a, b):
    jax.tree.map(np.testing.assert_array_equal, a, b)


def test_evaluate_counts_every_example_once_and_matches_sklearn():
    state = _state()
    data = _data(23)
    report = evaluate(state, data, batch_size=8, label_names=["a", "b", "c"])  # 3 batches, last one padded
    ids = np.zeros((23, 9), np.int32)
    lengths = np.array([len(x) for x in data["token_ids"]], np.int32)
    for i, x in enumerate(data["token_ids"]):
        ids[i, : len(x)] = x
    predictions = np.asarray(jnp.argmax(state.apply_fn({"params": state.params}, ids, lengths), -1))
    assert report["support"] == 23
    np.testing.assert_array_equal(report["confusion_matrix"], skm.confusion_matrix(data["label"], predictions, labels=[0, 1, 2]))
    assert report["accuracy"] == pytest.approx(skm.accuracy_score(data["label"], predictions))
    assert report["f1"] == pytest.approx(skm.f1_score(data["label"], predictions, average="macro", zero_division=0))
    # Any batch size gives the same numbers.
    other = evaluate(state, data, batch_size=5, label_names=["a", "b", "c"])
    assert other["confusion_matrix"] == report["confusion_matrix"]
    assert other["loss"] == pytest.approx(report["loss"], rel=1e-5)


def test_fit_learns_and_records_history():
    state, history = fit(_state(), _data(), epochs=12, batch_size=8, validation_data=_data(30, 1))
    assert len(history["loss"]) == len(history["val_accuracy"]) == 12
    assert history["loss"][-1] < history["loss"][0]
    assert history["val_accuracy"][-1] > 0.6


def test_same_seed_same_parameters():
    a, _ = fit(_state(), _data(), epochs=2, batch_size=8)
    b, _ = fit(_state(), _data(), epochs=2, batch_size=8)
    _assert_same(a.params, b.params)


def test_resume_equals_uninterrupted(tmp_path):
    """Stopped after epoch 2 and resumed to 4: the same parameters as 4 epochs in one go."""
    full, full_history = fit(_state(), _data(), epochs=4, batch_size=8, validation_data=_data(20, 1))
    best = EarlyStopping()  # tracks the best epoch, stops nothing
    with Checkpointer(tmp_path) as ckpt:
        fit(_state(), _data(), epochs=2, batch_size=8, validation_data=_data(20, 1),
            callbacks=[best, Checkpointing(ckpt, best)])
    with Checkpointer(tmp_path) as ckpt:
        restored, meta, best = ckpt.restore(_state(seed=99))  # a fresh, different init
    assert meta["epoch"] == 2
    resumed, history = fit(restored, _data(), epochs=4, batch_size=8, validation_data=_data(20, 1),
                           history=meta["history"], callbacks=[EarlyStopping(best_params=best)])
    _assert_same(resumed.params, full.params)
    _assert_same(resumed.opt_state, full.opt_state)
    assert int(resumed.step) == int(full.step)
    assert history["loss"] == full_history["loss"]


def test_early_stopping_restores_best(tmp_path):
    # A learning rate this high makes validation loss wander, so patience triggers.
    with Checkpointer(tmp_path) as ckpt:
        state, history = fit(_state(lr=0.3), _data(), epochs=30, batch_size=8, validation_data=_data(20, 1),
                             callbacks=[es := EarlyStopping(2, monitor="loss"), Checkpointing(ckpt, es)])
    assert history["stopped_early"]
    assert len(history["loss"]) == history["best_epoch"] + 2
    best_epoch = history["best_epoch"]
    report = evaluate(state, _data(20, 1))
    assert report["loss"] == pytest.approx(history["val_loss"][best_epoch - 1], rel=1e-5)


def test_nan_loss_is_an_error():
    with pytest.raises(TrainingError, match="training loss became nan in epoch 1"):
        fit(_state(lr=float("nan")), _data(), epochs=1, batch_size=8)


def test_fit_bad_arguments():
    with pytest.raises(ValueError, match="patience.*needs validation_data"):
        fit(_state(), _data(), epochs=1, callbacks=[EarlyStopping(patience=1)])
    with pytest.raises(ValueError, match="monitor must be"):
        fit(_state(), _data(), epochs=1, callbacks=[EarlyStopping(monitor="auc")])
    with pytest.raises(ValueError, match="training split is empty"):
        fit(_state(), {"token_ids": [], "label": []}, epochs=1)


class TestCheckpoints:
    @pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
    def test_crash_while_saving_keeps_last_good(self, tmp_path, monkeypatch):
        ckpt = Checkpointer(tmp_path)
        state = _state()
        ckpt.save(1, state, {"epoch": 1})
        import orbax.checkpoint as ocp

        def crash(*args, **kwargs):
            raise OSError("disk full (simulated)")

        monkeypatch.setattr(ocp.StandardCheckpointHandler, "save", crash)
        monkeypatch.setattr(ocp.StandardCheckpointHandler, "async_save", crash)
        changed = state.replace(params=jax.tree.map(lambda x: x + 1, state.params))
        with pytest.raises(OSError, match="simulated"):
            ckpt.save(2, changed, {"epoch": 2})
        ckpt.close()
        monkeypatch.undo()
        with Checkpointer(tmp_path) as fresh:
            assert fresh.latest_step() == 1
            restored, meta, _ = fresh.restore(_state(seed=5))
        assert meta == {"epoch": 1}
        _assert_same(restored.params, state.params)

    def test_restore_into_another_shape_fails_clearly(self, tmp_path):
        with Checkpointer(tmp_path) as ckpt:
            ckpt.save(1, _state(), {"epoch": 1})
        other = create_train_state(MODEL.clone(hidden_size=16), jax.random.key(0), make_optimizer())
        with Checkpointer(tmp_path) as ckpt, pytest.raises(CheckpointError, match="no checkpoint could be restored.*1: "):
            ckpt.restore(other)

    def test_no_checkpoint(self, tmp_path):
        with Checkpointer(tmp_path) as ckpt, pytest.raises(CheckpointError, match="no checkpoint to restore"):
            ckpt.restore(_state())

    def test_run_files_round_trip_and_mismatch(self, tmp_path):
        tok = get_tokenizer("english")
        vocab = Vocab.build([tok("a fine film"), tok("a dull film")], tokenizer=tok)
        save_run_files(tmp_path, Config(hidden=16), vocab, tok, ("neg", "pos"))
        files = load_run_files(tmp_path)
        assert files.config == Config(hidden=16) and files.vocab == vocab and files.label_names == ("neg", "pos")
        assert json.loads((tmp_path / "config.json").read_text())["hidden"] == 16
        with pytest.raises(CheckpointError, match="cell: saved 'lstm', given 'gru'; hidden: saved 16, given 32"):
            check_compatible(tmp_path, Config(hidden=32, cell="gru"))
        other = Vocab.build([tok("a great film")], tokenizer=tok)
        with pytest.raises(CheckpointError, match="vocabulary differs"):
            check_compatible(tmp_path, Config(hidden=16), other)
        check_compatible(tmp_path, Config(hidden=16, epochs=3, patience=2), vocab)  # how long to train may change
        with pytest.raises(CheckpointError, match="different run: lr: saved 0.001, given 0.5.*--allow-change"):
            check_compatible(tmp_path, Config(hidden=16, lr=0.5), vocab)  # a new learning rate: only on purpose
        check_compatible(tmp_path, Config(hidden=16, lr=0.5), vocab, allow=("lr",))

    def test_missing_and_damaged_files(self, tmp_path):
        with pytest.raises(CheckpointError, match="config.json: missing"):
            load_run_files(tmp_path)
        tok = get_tokenizer("english")
        save_run_files(tmp_path, Config(), Vocab.build([tok("a b")], tokenizer=tok), tok, ("neg", "pos"))
        (tmp_path / "config.json").write_text('{"hidden": 8, "colour": "red"}')
        with pytest.raises(CheckpointError, match="unknown config field"):
            load_run_files(tmp_path)
        save_run_files(tmp_path, Config(), Vocab.build([tok("a b")], tokenizer=tok), get_tokenizer("char"), ("neg", "pos"))
        with pytest.raises(CheckpointError, match="vocabulary built with tokenizer 'english'"):
            load_run_files(tmp_path)
