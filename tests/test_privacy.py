"""DP-SGD, privacy accounting and the membership attack (lstmjax.privacy)."""

import json
import math

import dp_accounting
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from lstmjax import TextClassifier, create_train_state, fit, make_optimizer, train_step
from lstmjax.app.cli import main
from lstmjax.app.config import Config
from lstmjax.data.batching import poisson_batches
from lstmjax.parallel import DataParallel
from lstmjax.privacy.dp import (
    dp_aggregate,
    dp_train_step,
    epsilon,
    make_dp_optimizer,
    noise_multiplier_for_epsilon,
    per_example_grads,
)
from lstmjax.privacy.membership import membership_attack, per_example_losses, roc_auc
from lstmjax.training import keyed
from lstmjax.training.steps import sparse_cross_entropy

MODEL = TextClassifier(30, 2, embed_dim=8, hidden_size=8)




_dp_step = jax.jit(dp_train_step)
_plain_step = jax.jit(train_step)
_grads = jax.jit(per_example_grads)


def test_no_clip_no_noise_equals_plain_training(make_batch):
    """Infinite clip and zero noise: DP-SGD is plain Adam on the mean gradient (optax's own degenerate case)."""
    rng = np.random.default_rng(0)
    dp = create_train_state(MODEL, jax.random.key(0), make_dp_optimizer(
        "adam", 1e-2, clip_norm=math.inf, noise_multiplier=0.0, batch_size=6, key=jax.random.key(5)))
    plain = create_train_state(MODEL, jax.random.key(0), make_optimizer("adam", 1e-2))
    for i in range(3):
        batch = make_batch(rng, classes=2, mask=True, as_jax=False)
        dp, m_dp = _dp_step(dp, batch, jax.random.key(i))
        plain, m_plain = _plain_step(plain, batch, jax.random.key(i))
        np.testing.assert_allclose(m_dp["loss_sum"], m_plain["loss_sum"], rtol=1e-5)
        assert int(m_dp["correct"]) == int(m_plain["correct"]) and int(m_dp["count"]) == 6
    for a, b in zip(jax.tree.leaves(dp.params), jax.tree.leaves(plain.params)):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_per_example_grads_match_a_loop_and_filler_rows_change_nothing(make_batch):
    rng = np.random.default_rng(1)
    state = create_train_state(MODEL, jax.random.key(0), make_optimizer())
    real = make_batch(rng, n=3, classes=2, mask=True, as_jax=False)
    padded = {k: np.concatenate([v, make_batch(rng, n=2, classes=2, mask=True, as_jax=False)[k]]) for k, v in real.items()}  # garbage filler rows
    padded["mask"][3:] = False
    grads, losses, _ = _grads(state, padded, jax.random.key(0))

    @jax.jit
    def reference(params, one):  # jax.grad of one example at a time
        return jax.grad(lambda p: sparse_cross_entropy(
            state.apply_fn({"params": p}, one["token_ids"], one["lengths"]), one["labels"], one["mask"]))(params)

    for i in range(3):
        ref = reference(state.params, {k: v[i:i + 1] for k, v in real.items()})
        for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(ref)):
            np.testing.assert_allclose(a[i], b, atol=1e-6)
    for g in jax.tree.leaves(grads):
        assert not np.any(np.asarray(g[3:]))
    assert not np.any(np.asarray(losses[3:])) and np.all(np.asarray(losses[:3]) > 0)
    # Through clipping and noise, the padded batch gives the real rows' update exactly.
    real_grads = jax.tree.map(lambda g: g[:3], grads)
    tx = dp_aggregate(0.5, 1.3, jax.random.key(3), batch_size=3)
    out_padded, _ = tx.update(grads, tx.init(None))
    out_real, _ = tx.update(real_grads, tx.init(None))
    for a, b in zip(jax.tree.leaves(out_padded), jax.tree.leaves(out_real)):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_clipping_bounds_each_examples_contribution():
    """Hand-made per-example gradients over two leaves: the global norm is clipped, as a NumPy reference."""
    g = {"a": np.array([[3.0, 4.0], [0.0, 0.1], [6.0, 0.0]], np.float32),
         "b": np.array([[12.0], [0.0], [8.0]], np.float32)}  # global norms 13, 0.1, 10
    tx = dp_aggregate(2.0, 0.0, jax.random.key(0), batch_size=5)
    out, _ = jax.jit(tx.update)(g, tx.init(None))
    norms = np.sqrt((g["a"] ** 2).sum(1) + (g["b"] ** 2).sum(1))
    scale = np.minimum(1.0, 2.0 / norms)
    for k in g:
        np.testing.assert_allclose(out[k], (scale[:, None] * g[k]).sum(0) / 5, rtol=1e-6)
    # Adding any one example moves the noiseless update by at most clip / batch_size.
    huge = {"a": np.array([[1e6, -1e6]], np.float32), "b": np.array([[1e6]], np.float32)}
    more = {k: np.concatenate([g[k], huge[k]]) for k in g}
    out2, _ = jax.jit(tx.update)(more, tx.init(None))
    moved = np.sqrt(sum(float(np.sum((np.asarray(out2[k]) - np.asarray(out[k])) ** 2)) for k in g))
    np.testing.assert_allclose(moved, 2.0 / 5, rtol=1e-5)


def test_noise_has_the_stated_scale():
    tx = dp_aggregate(2.0, 1.5, jax.random.key(0), batch_size=4)
    zeros = {"w": jnp.zeros((4, 20000), jnp.float32)}
    out, state = jax.jit(tx.update)(zeros, tx.init(None))
    np.testing.assert_allclose(np.std(np.asarray(out["w"])), 2.0 * 1.5 / 4, rtol=0.03)
    out2, _ = jax.jit(tx.update)(zeros, state)
    assert not np.allclose(out["w"], out2["w"])  # a fresh key every step


def test_dp_arguments_are_checked():
    with pytest.raises(ValueError, match="clip_norm must be positive"):
        dp_aggregate(0.0, 1.0, jax.random.key(0), batch_size=4)
    with pytest.raises(ValueError, match="noise_multiplier must be 0 when clip_norm is infinite"):
        dp_aggregate(math.inf, 1.0, jax.random.key(0), batch_size=4)
    with pytest.raises(ValueError, match="batch_size"):
        dp_aggregate(1.0, 1.0, jax.random.key(0), batch_size=0)
    with pytest.raises(ValueError, match="pmap"):  # each device would add its own noise
        DataParallel.create("pmap", 2).train_step(keyed(dp_train_step))
    with pytest.raises(ValueError, match="dp_clip_norm"):
        Config(dp_noise_multiplier=1.0, dp_clip_norm=0.0)
    with pytest.raises(ValueError, match="use one, not both"):
        Config(dp_noise_multiplier=1.0, clip_norm=1.0)
    with pytest.raises(ValueError, match="dp_delta"):
        Config(dp_delta=1.5)


# --------------------------------------------------------------------------- sampling


def test_poisson_batches():
    n = 400
    data = {"token_ids": [[i % 7 + 2] * (i % 5 + 1) for i in range(n)], "label": [i % 2 for i in range(n)]}
    out = list(poisson_batches(data, 0.05, 200, seed=3, max_length=4, pad_to=20))
    again = list(poisson_batches(data, 0.05, 200, seed=3, max_length=4, pad_to=20))
    assert all(np.array_equal(a["token_ids"], b["token_ids"]) for a, b in zip(out, again))
    sizes = np.array([int(b["mask"].sum()) for b in out])
    assert all(b["mask"].shape[0] % 20 == 0 and b["token_ids"].shape[1] <= 4 for b in out)
    # Binomial(400, 0.05): mean 20, variance 19
    assert abs(sizes.mean() - 20) < 4 * math.sqrt(19 / 200) and 10 < sizes.var() < 30
    assert sizes.max() > 20  # batches larger than pad_to are padded further, never cut
    big = next(b for b, s in zip(out, sizes) if s > 20)
    assert big["mask"].shape[0] == 40
    with pytest.raises(ValueError, match="sample_rate"):
        next(poisson_batches(data, 0.0, 1))


# --------------------------------------------------------------------------- accounting


@pytest.mark.parametrize("q,sigma,steps", [(0.01, 1.1, 1000), (0.004, 0.8, 3000), (0.1, 2.0, 50)])
def test_epsilon_matches_dp_accounting(q, sigma, steps):
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps)
    for kind, accountant in (("rdp", dp_accounting.rdp.RdpAccountant()), ("pld", dp_accounting.pld.PLDAccountant())):
        accountant.compose(event)
        assert epsilon(sigma, q, steps, 1e-5, accountant=kind) == pytest.approx(accountant.get_epsilon(1e-5), rel=1e-9)


def test_epsilon_without_sampling_is_the_gaussian_mechanism():
    """k Gaussian mechanisms of noise σ compose to one of noise σ/√k: the analytic Gaussian (Balle & Wang)."""
    reference = dp_accounting.get_epsilon_gaussian(1.5 / math.sqrt(4), 1e-5)
    assert epsilon(1.5, 1.0, 4, 1e-5, accountant="pld") == pytest.approx(reference, rel=1e-2)


def test_epsilon_is_monotone():
    by_steps = [epsilon(1.0, 0.01, s, 1e-5) for s in (0, 10, 100, 1000, 5000)]
    assert by_steps[0] == 0.0 and all(a < b for a, b in zip(by_steps, by_steps[1:]))
    by_noise = [epsilon(s, 0.01, 1000, 1e-5) for s in (0.6, 0.9, 1.5, 3.0)]
    assert all(a > b for a, b in zip(by_noise, by_noise[1:]))
    assert epsilon(0.0, 0.01, 10, 1e-5) == math.inf
    for bad in ({"sample_rate": 0.0}, {"delta": 1.0}, {"steps": -1}):
        kwargs = {"noise_multiplier": 1.0, "sample_rate": 0.1, "steps": 10, "delta": 1e-5, **bad}
        with pytest.raises(ValueError, match=next(iter(bad))):
            epsilon(**kwargs)


def test_noise_multiplier_for_epsilon():
    for target in (0.5, 3.0):
        sigma = noise_multiplier_for_epsilon(target, 0.02, 500, 1e-5, tol=1e-4)
        assert epsilon(sigma, 0.02, 500, 1e-5) <= target < epsilon(sigma - 1e-3, 0.02, 500, 1e-5)


# --------------------------------------------------------------------------- membership inference


def test_roc_auc_matches_sklearn():
    rng = np.random.default_rng(0)
    for _ in range(5):
        labels = rng.integers(0, 2, 200)
        scores = np.round(rng.normal(size=200) + labels, 1)  # many ties
        assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert roc_auc([1, 2, 3], [0, 1, 1]) == 1.0 and roc_auc([3, 2, 1], [0, 1, 1]) == 0.0
    assert roc_auc([5, 5, 5, 5], [0, 1, 0, 1]) == 0.5
    with pytest.raises(ValueError, match="at least one positive and one negative"):
        roc_auc([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="0/1"):
        roc_auc([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match="differ in length"):
        roc_auc([0.1, 0.2], [0])


def test_membership_attack_on_an_overfit_model():
    """Random texts with random labels: the model can only memorise, so members have low loss."""
    rng = np.random.default_rng(0)

    def random_split(n):
        return {"token_ids": [rng.integers(2, 30, size=6).tolist() for _ in range(n)],
                "label": rng.integers(0, 2, n).tolist()}

    members, nonmembers = random_split(32), random_split(32)
    state = create_train_state(TextClassifier(30, 2, embed_dim=16, hidden_size=32), jax.random.key(0),
                               make_optimizer("adam", 3e-2))
    state, _ = fit(state, members, epochs=30, batch_size=8, parallel=DataParallel.create("none"))
    result = membership_attack(per_example_losses(state, members), per_example_losses(state, nonmembers))
    assert result["auc"] > 0.8 and result["advantage"] > 0.4
    assert result["members"] == 32 and result["nonmembers"] == 32
    losses = np.concatenate([per_example_losses(state, members), per_example_losses(state, nonmembers)])
    assert result["auc"] == pytest.approx(roc_auc_score(np.r_[np.ones(32), np.zeros(32)], -losses))


# --------------------------------------------------------------------------- the command line


def test_cli_trains_privately_and_reports_epsilon(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "labels.txt").write_text("neg\npos\n")
    rng = np.random.default_rng(0)
    words = ["good", "great", "fine", "bad", "awful", "dull", "film", "plot", "the", "a"]
    for split, n in (("train", 96), ("validation", 16), ("test", 24)):
        rows = ["text,label"]
        for _ in range(n):
            label = int(rng.integers(0, 2))
            rows.append(" ".join(rng.choice(words, size=4)) + f",{label}")
        (data / f"{split}.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "run"
    argv = ["train", "--data", str(data), "--epochs", "2", "--hidden", "8", "--embed-dim", "8", "--max-len", "8",
            "--batch-size", "32", "--dp-noise-multiplier", "1.1", "--dp-clip-norm", "1.0", "--dp-delta", "1e-3",
            "--out", str(out), "--cache-dir", str(tmp_path / "cache")]  # parallel auto: a mesh of the 8 CPU devices
    assert main(argv) == 0
    log = capsys.readouterr().out
    privacy = json.loads((out / "metrics.json").read_text())["privacy"]
    assert privacy["sampling"] == "poisson" and privacy["sample_rate"] == pytest.approx(32 / 96)
    assert privacy["steps_per_epoch"] == 3 and len(privacy["epsilon_per_epoch"]) == 2
    assert privacy["epsilon"] == pytest.approx(epsilon(1.1, 32 / 96, 6, 1e-3))
    assert privacy["epsilon_per_epoch"][0] == pytest.approx(epsilon(1.1, 32 / 96, 3, 1e-3))
    assert f"epsilon {privacy['epsilon']:.3f}" in log
    assert main(["evaluate", str(out)]) == 0  # the DP optimizer's state restores from the checkpoint
