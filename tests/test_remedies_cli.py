"""``lstmjax train`` with the overfitting remedies and compression options (§9.2, §8.2).

Every option is checked where it lands: the optimizer update, the model, the training rows,
the folds, the members, the saved parameters, the written int8 file. Tiny data, one epoch.
"""

import json

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lstmjax import compress as compression
from lstmjax.app import stages as _remedies
from lstmjax.app.cli import _config_from_args, _parser, main
from lstmjax.app.config import Config
from lstmjax.app.predictor import Predictor, evaluate_run
from lstmjax.app.stages import build_model
from lstmjax.training.state import TrainState, create_train_state, make_optimizer

POS = ["a good film", "great fun and moving", "a wonderful story", "brilliant acting", "funny and warm film",
       "a beautiful moving picture", "smart and charming", "good performances all round"]
NEG = ["a bad film", "boring and dull", "a terrible story", "awful acting", "stupid and tedious film",
       "a weak predictable plot", "lame and silly", "bad performances all round"]
SMALL = ["--epochs", "1", "--hidden", "8", "--embed-dim", "8", "--max-len", "12", "--batch-size", "16",
         "--parallel", "none"]


def _csv(rows):
    return "text,label\n" + "".join(f'"{t}",{y}\n' for t, y in rows)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    (d / "labels.txt").write_text("neg\npos\n")
    rows = [(t, 1) for t in POS] + [(t, 0) for t in NEG]
    (d / "train.csv").write_text(_csv(rows * 3))  # 48 rows, 24 per class
    (d / "validation.csv").write_text(_csv(rows[::2]))  # 8
    (d / "test.csv").write_text(_csv(rows[1::2] + rows[:2]))  # 10
    return d


def _train(tmp_path, data_dir, *options):
    out = tmp_path / "run"
    code = main(["train", *SMALL, "--data", str(data_dir), "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
                 *options])
    assert code == 0
    return out, json.loads((out / "metrics.json").read_text())


# --------------------------------------------------------------------------------------------- no training


def test_every_option_is_a_flag():
    args = _parser().parse_args(["train", "--l1", "0.01", "--l2", "0.02", "--recurrent-dropout", "0.3",
                                 "--embed-dropout", "0.1", "--output-dropout", "0.2", "--dropout", "0.25",
                                 "--augment", "2", "--augment-alpha", "0.2", "--synonyms", "none", "--prune", "0.5",
                                 "--cv", "4", "--prune-schedule", "gradual", "--prune-scope", "per_layer",
                                 "--quantize", "--optimizer", "adamw", "--weight-decay", "0.01"])
    c = _config_from_args(args)
    assert (c.l1, c.l2, c.recurrent_dropout, c.augment, c.augment_alpha, c.synonyms, c.cv) == \
        (0.01, 0.02, 0.3, 2, 0.2, "none", 4)
    assert (c.prune, c.prune_schedule, c.prune_scope, c.quantize, c.weight_decay) == \
        (0.5, "gradual", "per_layer", True, 0.01)
    assert _config_from_args(_parser().parse_args(["train", "--ensemble", "3"])).ensemble == 3
    model = build_model(c, 50, 2)
    assert (model.recurrent_dropout, model.embed_dropout, model.output_dropout, model.dropout) == (0.3, 0.1, 0.2, 0.25)


@pytest.mark.parametrize("changes, message", [
    ({"cv": 1}, "cv must be 0"), ({"augment": -1}, "augment must be"), ({"ensemble": 0}, "ensemble must be"),
    ({"prune": 1.0}, "prune must be"), ({"l2": -1.0}, "l2 must be"), ({"recurrent_dropout": 1.0}, "recurrent_dropout"),
    ({"ensemble": 2, "prune": 0.5}, "does not combine with prune"), ({"ensemble": 2, "cv": 3}, "cv"),
])
def test_bad_combinations_are_errors(changes, message):
    with pytest.raises(ValueError, match=message):
        Config(**changes)


def _updates(config, grads, params, base="sgd"):
    tx = _remedies.make_optimizer(config.replace(optimizer="sgd", lr=1.0) if base == "sgd" else config, 100)
    updates, _ = tx.update(grads, tx.init(params), params)
    return updates


def test_l1_l2_change_the_update_on_weight_matrices_only():
    params = create_train_state(build_model(Config(hidden=4, embed_dim=4), 20, 2), jax.random.key(0),
                                make_optimizer()).params
    grads = jax.tree.map(jnp.zeros_like, params)
    plain = _updates(Config(), grads, params)
    l1, l2 = _updates(Config(l1=0.5), grads, params), _updates(Config(l2=0.1), grads, params)
    w = params["recurrent"]["layer_0_forward"]["W_h"]
    np.testing.assert_allclose(l2["recurrent"]["layer_0_forward"]["W_h"], -0.1 * w, rtol=1e-6)  # sgd(1): −l2·w
    np.testing.assert_allclose(l1["dense"]["kernel"], -0.5 * np.sign(params["dense"]["kernel"]), rtol=1e-6)
    for u in (l1, l2):  # biases and the embedding are not penalised
        np.testing.assert_array_equal(u["dense"]["bias"], plain["dense"]["bias"])
        np.testing.assert_array_equal(u["embedding"]["embedding"], plain["embedding"]["embedding"])


def test_weight_decay_is_decoupled_adamw():
    params = {"kernel": jnp.array([[2.0, -1.0]])}
    grads = {"kernel": jnp.array([[0.3, 0.3]])}
    adam = _updates(Config(lr=0.01), grads, params, base="config")["kernel"]
    adamw = _updates(Config(lr=0.01, optimizer="adamw", weight_decay=0.1), grads, params, base="config")["kernel"]
    # optax.adamw: the decay −lr·wd·w is added after Adam's scaling, not passed through it
    np.testing.assert_allclose(adamw - adam, -0.01 * 0.1 * params["kernel"], rtol=1e-5)


# --------------------------------------------------------------------------------------------- training runs


def test_augment_adds_training_rows_only(tmp_path, data_dir, capsys):
    _, m = _train(tmp_path, data_dir, "--augment", "2", "--recurrent-dropout", "0.2", "--l2", "1e-3")
    assert m["augmentation"]["train_rows_before"] == 48 and m["augmentation"]["train_rows_after"] == 144
    assert m["augmentation"]["synonym_entries"] > 100  # the built-in English table
    assert m["support"] == 10  # the test split is as it was
    assert "48 → 144 rows" in capsys.readouterr().out
    assert m["config"]["recurrent_dropout"] == 0.2 and m["config"]["l2"] == 1e-3
    g = m["generalization"]  # train accuracy on the 48 original rows, not the copies
    assert g["test_accuracy"] == m["accuracy"] and "validation_accuracy" in g
    np.testing.assert_allclose(g["train_test_gap"], g["train_accuracy"] - g["test_accuracy"])
    assert "pruning" not in m and "quantization" not in m and "cv" not in m


def test_cv_reports_k_folds_and_mean_std(tmp_path, data_dir, capsys):
    _, m = _train(tmp_path, data_dir, "--cv", "3", "--augment", "1")
    folds = m["cv"]["folds"]
    assert m["cv"]["k"] == 3 and len(folds) == 3
    assert sum(f["support"] for f in folds) == 48  # held out: original rows only, each once
    for metric in ("accuracy", "f1", "loss"):
        np.testing.assert_allclose(m["cv"]["mean"][metric], np.mean([f[metric] for f in folds]))
        np.testing.assert_allclose(m["cv"]["std"][metric], np.std([f[metric] for f in folds]))
    assert "cv 3-fold: accuracy" in capsys.readouterr().out


def test_ensemble_reports_members_and_loads_back(tmp_path, data_dir, capsys):
    out, m = _train(tmp_path, data_dir, "--ensemble", "3", "--output-dropout", "0.1")
    e = m["ensemble"]
    assert e["members"] == 3 and len(e["member_metrics"]) == 3
    assert m["accuracy"] == e["ensemble_accuracy"]
    np.testing.assert_allclose(e["member_accuracy_mean"], np.mean([r["accuracy"] for r in e["member_metrics"]]))
    assert len({json.dumps(r) for r in e["member_metrics"]}) > 1 or e["member_accuracy_std"] == 0
    predictor = Predictor(out)
    assert predictor.state.params["dense"]["kernel"].shape[0] == 3  # K members saved
    p = predictor.predict_proba(["a good film", "boring"])
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-5)
    assert evaluate_run(out)["accuracy"] == m["accuracy"]


@pytest.mark.parametrize("schedule, scope", [("oneshot", "global"), ("gradual", "per_layer")])
def test_prune_reaches_the_target_in_the_saved_params(tmp_path, data_dir, capsys, schedule, scope):
    out, m = _train(tmp_path, data_dir, "--prune", "0.9", "--prune-schedule", schedule, "--prune-scope", scope,
                    *(["--quantize"] if schedule == "oneshot" else []))
    saved = Predictor(out).state.params
    measured = compression.sparsity(saved)
    assert m["pruning"]["sparsity"] == measured["overall"]
    assert abs(measured["overall"] - 0.9) < 0.01
    if scope == "per_layer":
        for path, leaf in jax.tree_util.tree_flatten_with_path(saved)[0]:
            if leaf.ndim >= 2:  # exactly round(0.9 n) zeros in every matrix
                assert int(jnp.sum(leaf == 0)) == round(0.9 * leaf.size), path
    assert evaluate_run(out)["accuracy"] == m["accuracy"]  # the evaluated model is the saved, pruned one
    if schedule == "oneshot":
        _check_quantized(out, m, capsys)


def _check_quantized(out, m, capsys):
    """--quantize wrote a smaller int8 model, the quantisation of the saved (pruned) params."""
    q = m["quantization"]
    payload = (out / q["file"]).read_bytes()
    assert q["int8_bytes"] == len(payload) < q["float_bytes"]
    params = Predictor(out).state.params
    assert q["float_bytes"] == compression.serialized_nbytes(params)
    template = compression.quantize_int8(params)
    loaded = flax.serialization.from_bytes(jax.device_get(template), payload)
    np.testing.assert_array_equal(loaded["dense"]["kernel"].q, template["dense"]["kernel"].q)
    assert 0.0 <= q["accuracy"] <= 1.0 and q["float_accuracy"] == m["accuracy"]
    assert "int8 quantisation" in capsys.readouterr().out


def test_bad_synonym_file_is_a_message(tmp_path, data_dir, capsys):
    bad = tmp_path / "syn.json"
    bad.write_text(json.dumps({"good": "great"}))
    code = main(["train", *SMALL, "--data", str(data_dir), "--out", str(tmp_path / "r"), "--augment", "1",
                 "--synonyms", str(bad), "--cache-dir", str(tmp_path / "cache")])
    assert code == 2
    err = capsys.readouterr().err
    assert "syn.json" in err and "'good'" in err


def test_gradual_pruning_transform_equals_prune_step_between_steps():
    """The optax transformation against the host-side construction: sgd + keep_pruned_zero + prune_step."""
    params = {"w": jax.random.normal(jax.random.key(0), (6, 5)), "b": jnp.ones(5)}
    sched = compression.polynomial_sparsity_schedule(0.8, 0, 6)
    grads = [jax.tree.map(lambda p, i=i: jax.random.normal(jax.random.key(10 + i), p.shape), params) for i in range(8)]
    tx_a = optax.chain(optax.sgd(0.1), compression.gradual_pruning(sched))
    pa, sa = params, tx_a.init(params)
    tx_b = optax.chain(optax.sgd(0.1), compression.keep_pruned_zero())
    state_b = TrainState.create(apply_fn=None, params=params, tx=tx_b, rng=jax.random.key(0))
    masks_b = compression.magnitude_masks(params, 0.0)
    for g in grads:
        u, sa = tx_a.update(g, sa, pa)
        pa = optax.apply_updates(pa, u)
        state_b = state_b.apply_gradients(grads=g)
        state_b, masks_b = compression.prune_step(state_b, masks_b, lambda step: sched(step - 1))
        np.testing.assert_allclose(pa["w"], state_b.params["w"], atol=1e-6)
        np.testing.assert_array_equal(pa["w"] == 0, ~masks_b["w"])
    assert abs(float(jnp.mean(pa["w"] == 0)) - 0.8) < 0.02 and bool(jnp.all(pa["b"] != 0))
