"""Data parallelism: pmap over 8 devices = jit over an 8-device mesh = one device; 2 processes = 1.

Tolerance: parameters after several Adam steps agree to ``atol=2e-5`` (float32 rounding of
gradients summed in a different order, amplified at most by Adam's normalisation of tiny
gradients); metric counts and confusion matrices agree exactly.
"""

import os
import pathlib
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from lstmjax import TextClassifier
from lstmjax.data.batching import batches, prepare
from lstmjax.data.loading import load_dataset
from lstmjax.parallel import DataParallel, pad_batch
from lstmjax.training.loop import evaluate, fit
from lstmjax.training.state import create_train_state, make_optimizer

ATOL = 2e-5
HERE = pathlib.Path(__file__).parent


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Real data: the first 600 training and 300 test sentences of the built-in set."""
    d = load_dataset("builtin", cache_dir=str(tmp_path_factory.mktemp("hf")))
    prepared = prepare(d, "english", max_size=3000)
    train = prepared["train"].shuffle(seed=0).select(range(600))
    return train, prepared["test"].select(range(300)), len(prepared.vocab)


def _state(vocab_size, dropout):
    model = TextClassifier(vocab_size, 2, embed_dim=16, hidden_size=16, embed_dropout=dropout, output_dropout=dropout)
    return create_train_state(model, jax.random.key(0), make_optimizer("adam", 3e-3))


def _run(mode, train, vocab_size, dropout, num_devices=None, batch_size=32, steps=6):
    dp = DataParallel.create(mode, num_devices)
    state = dp.put_state(_state(vocab_size, dropout))
    step = dp.train_step()
    for i, batch in enumerate(batches(train, batch_size, shuffle=True, seed=1, max_length=40)):
        if i == steps:
            break
        state, m = step(state, dp.put_batch(batch))
    return dp.get_state(state), dp.get_metrics(m)


def _assert_close(a, b):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=ATOL, rtol=0), a, b)


@pytest.mark.parametrize("dropout", [0.0, 0.3], ids=["no-dropout", "dropout"])
def test_pmap_mesh_and_single_device_agree(data, dropout):
    train, _, vocab_size = data
    single, m1 = _run("none", train, vocab_size, dropout)
    pmapped, m8p = _run("pmap", train, vocab_size, dropout, 8)
    meshed, m8m = _run("mesh", train, vocab_size, dropout, 8)
    assert jax.device_count() == 8
    _assert_close(single.params, pmapped.params)
    _assert_close(single.params, meshed.params)
    _assert_close(single.opt_state, pmapped.opt_state)
    assert int(single.step) == int(pmapped.step) == int(meshed.step) == 6
    assert int(m1["count"]) == int(m8p["count"]) == int(m8m["count"]) == 32
    np.testing.assert_allclose(m1["loss_sum"], m8p["loss_sum"], rtol=1e-5)
    if dropout:  # dropout really was on: the deterministic run differs
        plain, _ = _run("none", train, vocab_size, 0.0)
        assert not np.allclose(plain.params["dense"]["kernel"], single.params["dense"]["kernel"], atol=1e-4)


def test_batch_not_divisible_by_devices(data):
    """30 examples over 8 devices: padded with masked filler rows, same result as one device."""
    train, _, vocab_size = data
    single, m1 = _run("none", train, vocab_size, 0.2, batch_size=30, steps=3)
    meshed, m8 = _run("mesh", train, vocab_size, 0.2, num_devices=8, batch_size=30, steps=3)
    _assert_close(single.params, meshed.params)
    assert int(m1["count"]) == int(m8["count"]) == 30


def test_pad_batch():
    b = pad_batch({"labels": np.arange(5, dtype=np.int32), "mask": np.ones(5, bool)}, 4)
    assert b["labels"].tolist() == [0, 1, 2, 3, 4, 0, 0, 0] and b["mask"].sum() == 5
    same = {"labels": np.arange(4, dtype=np.int32)}
    assert pad_batch(same, 4)["mask"].all()


def test_evaluation_identical_on_1_and_8_devices(data):
    train, test, vocab_size = data
    state, _ = fit(_state(vocab_size, 0.0), train, epochs=1, batch_size=64, max_length=40)
    one = evaluate(state, test, batch_size=64, parallel=DataParallel.create("none"))
    for mode in ("pmap", "mesh"):
        eight = evaluate(state, test, batch_size=64, parallel=DataParallel.create(mode, 8))
        assert eight["confusion_matrix"] == one["confusion_matrix"]
        assert eight["support"] == one["support"] == 300
        assert eight["accuracy"] == one["accuracy"] and eight["f1"] == one["f1"]
        assert eight["loss"] == pytest.approx(one["loss"], rel=1e-5)


def test_fit_with_each_mode_agrees(data):
    train, test, vocab_size = data
    results = {
        mode: fit(_state(vocab_size, 0.2), train, epochs=1, batch_size=64, max_length=40,
                  parallel=DataParallel.create(mode, 8 if mode != "none" else None))[0]
        for mode in ("none", "pmap", "mesh")
    }
    _assert_close(results["none"].params, results["pmap"].params)
    _assert_close(results["none"].params, results["mesh"].params)


def test_bad_modes():
    with pytest.raises(ValueError, match="parallel must be"):
        DataParallel.create("tpu-magic")
    with pytest.raises(ValueError, match="only 8 device"):
        DataParallel.create("mesh", 16)
    assert DataParallel.create("auto").mode == "mesh"
    assert DataParallel.create("auto", 1).mode == "none"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    """Two processes on 127.0.0.1 (2 CPU devices each, gloo collectives), each feeding its half of
    every global batch, end with the parameters of one process training on the whole batches."""
    sys.path.insert(0, str(HERE))
    try:
        import _distributed_worker as worker
    finally:
        sys.path.pop(0)
    port, out = _free_port(), tmp_path / "params.npz"
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    procs = [
        subprocess.Popen([sys.executable, str(HERE / "_distributed_worker.py"), str(i), "2", str(port), str(out)],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(2)
    ]
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=300)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("the 2-process run did not finish in 300 s")
    assert all(p.returncode == 0 for p in procs), "\n".join(logs)[-3000:]
    reference = worker.train(DataParallel.create("none"))
    saved = np.load(out)
    leaves = jax.tree.leaves(reference.params)
    assert len(saved.files) == len(leaves)
    for i, leaf in enumerate(leaves):
        np.testing.assert_allclose(saved[f"arr_{i}"], np.asarray(leaf), atol=ATOL, rtol=0)


@pytest.mark.parametrize("mode", ["none", "pmap", "mesh"])
def test_callers_state_survives_training(data, mode):
    """The step donates the state it runs on; the state the caller passed in stays usable."""
    train, _, vocab_size = data
    state = _state(vocab_size, 0.0)
    before = jax.tree.map(np.asarray, state.params)
    fit(state, train, epochs=1, batch_size=64, max_length=40,
        parallel=DataParallel.create(mode, 2 if mode != "none" else None))
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, state.params), before)
    dp = DataParallel.create(mode, 2 if mode != "none" else None)
    for _ in range(2):  # put_state twice from the same state: both usable
        dp.train_step()(dp.put_state(state), dp.put_batch(next(batches(train, 64, max_length=40))))


def test_bounded_dispatch_waits_for_the_step_before_the_last(monkeypatch):
    """On CPU devices a step returns once the step before it has finished (never the donated state)."""
    from lstmjax.parallel import data_parallel as parallel

    waited = []
    monkeypatch.setattr(parallel.jax, "block_until_ready", lambda x: waited.append(x) or x)
    calls = iter(range(100))

    def fake_step(state, batch):
        n = next(calls)
        return f"state {n}", f"metrics {n}"

    two = parallel._BoundedStep(fake_step, parallel._METRICS, in_flight=2)
    for i in range(3):
        assert two(None, None) == (f"state {i}", f"metrics {i}")
        assert waited == [f"metrics {j}" for j in range(i)]  # after step i: steps < i, never state
    waited.clear()
    one = parallel._BoundedStep(fake_step, parallel._METRICS, in_flight=1)
    one(None, None)
    assert waited == ["metrics 3"]  # several processes: each step waits for itself


@pytest.mark.parametrize("mode", ["pmap", "mesh"])
def test_cpu_multi_device_steps_are_bounded(data, mode):
    """The steps DataParallel hands out on several CPU devices are bounded; one device's is the jit itself."""
    from lstmjax.parallel import data_parallel as parallel

    train, _, vocab_size = data
    dp = DataParallel.create(mode, 2)
    step = dp.train_step()
    assert isinstance(step, parallel._BoundedStep) and isinstance(dp.eval_step(), parallel._BoundedStep)
    state, batch = dp.put_state(_state(vocab_size, 0.0)), dp.put_batch(next(batches(train, 32, max_length=40)))
    if mode == "mesh":
        assert "all-reduce" in step.lower(state, batch).compile().as_text()  # the jit's own methods pass through
    for _ in range(3):
        state, m = step(state, batch)
    assert np.isfinite(dp.get_metrics(m)["loss_sum"])
    assert not isinstance(DataParallel.create("none").train_step(), parallel._BoundedStep)


@pytest.mark.parametrize("cell,options", [
    ("lstm", {}), ("lstm", {"hoist_inputs": True}), ("lstm", {"remat_chunk": 4}), ("lstm", {"fused": False}),
    ("gru", {}), ("rnn", {}), ("lstm", {"bidirectional": True, "num_layers": 2}),
])
def test_models_run_and_differentiate_under_shard_map(cell, options):
    """A user's own ``jax.shard_map`` over the batch: the scans' carries and the fused loop's
    custom VJP must be typed as varying over the mesh axis; loss and gradients equal one device's."""
    import jax.numpy as jnp
    from jax.sharding import Mesh
    from jax.sharding import PartitionSpec as P

    mesh = Mesh(np.array(jax.devices()[:2]), ("data",))
    model = TextClassifier(50, 3, embed_dim=8, hidden_size=8, cell=cell, **options)
    rng = np.random.default_rng(0)
    ids = jnp.asarray(rng.integers(1, 50, size=(128, 9)), jnp.int32)  # 64 per device: the "loop" weight grads
    lengths = jnp.asarray(rng.integers(1, 10, size=128), jnp.int32)
    params = model.init(jax.random.key(0), ids, lengths)

    def loss(p, i, n):
        return jnp.sum(model.apply(p, i, n) ** 2)

    def sharded(p, i, n):
        value, grads = jax.value_and_grad(loss)(p, i, n)
        return jax.lax.psum(value, "data"), grads  # gradients of replicated params arrive summed

    step = jax.jit(jax.shard_map(sharded, mesh=mesh, in_specs=(P(), P("data"), P("data")), out_specs=(P(), P())))
    value, grads = step(params, ids, lengths)
    value_ref, grads_ref = jax.value_and_grad(loss)(params, ids, lengths)
    np.testing.assert_allclose(value, value_ref, rtol=1e-5)
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_ref)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
