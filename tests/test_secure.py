"""Secure aggregation by additive secret sharing: exact field arithmetic, uniform shares, the
plain sum back to fixed-point precision, clear range errors, and the 8-device exchange."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

from lstmjax import TextClassifier
from lstmjax.parallel import secure as on_devices
from lstmjax.parallel.secure import secure_sum_across_devices
from lstmjax.privacy import secure
from lstmjax.privacy.secure import (
    FIELD_PRIME,
    aggregate,
    decode,
    encode,
    field_add,
    fixed_point_range,
    reconstruct,
    secure_sum,
    share,
)

P = FIELD_PRIME


@pytest.mark.parametrize("scale_bits", [0, 8, 16, 30])
def test_encode_decode_round_trip(scale_bits):
    rng = np.random.default_rng(scale_bits)
    x = np.concatenate([rng.normal(0, 100, 500), [0.0, -0.0, 1.0, -1.0]])
    enc = encode(x, scale_bits=scale_bits)
    assert enc.dtype == np.uint64 and (enc < np.uint64(P)).all()
    # an independent reference: Python integers
    expected = [int(round(v * 2**scale_bits)) % P for v in x]
    assert enc.tolist() == expected
    back = decode(enc, scale_bits=scale_bits, dtype=np.float64)
    np.testing.assert_array_less(np.abs(back - x), 2.0 ** -(scale_bits + 1) + 1e-12)


def test_field_add_matches_python_integers():
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.integers(0, P, 1000, dtype=np.uint64), np.array([P - 1, P - 1, 0, 1], np.uint64)])
    b = np.concatenate([rng.integers(0, P, 1000, dtype=np.uint64), np.array([P - 1, 1, 0, P - 1], np.uint64)])
    assert field_add(a, b).tolist() == [(int(x) + int(y)) % P for x, y in zip(a, b)]


def test_device_word_addition_matches_field_add():
    rng = np.random.default_rng(1)
    a = np.concatenate([rng.integers(0, P, 1000, dtype=np.uint64), np.array([P - 1, P - 1, 0, 2**32 - 1], np.uint64)])
    b = np.concatenate([rng.integers(0, P, 1000, dtype=np.uint64), np.array([P - 1, 1, 0, 1], np.uint64)])
    hi, lo = jax.jit(on_devices._add_words)(on_devices._to_words(a), on_devices._to_words(b))
    assert hi.dtype == jnp.uint32
    np.testing.assert_array_equal(on_devices._from_words(hi, lo), field_add(a, b))


@pytest.mark.parametrize("n", [1, 2, 5])
def test_shares_sum_to_the_secret(n):
    x = encode(np.array([[0.5, -3.25], [1e6, -1e-4]]))
    s = share(x, n, rng=np.random.default_rng(n))
    assert s.shape == (n, 2, 2) and s.dtype == np.uint64
    total = [sum(int(v) for v in s[:, i, j]) % P for i in range(2) for j in range(2)]
    assert total == x.ravel().tolist()
    np.testing.assert_array_equal(reconstruct(s), x)
    if n == 1:
        np.testing.assert_array_equal(s[0], x)


def _chi2_pvalue(v, bins=64):
    counts = np.bincount((v // np.uint64((P + bins - 1) // bins)).astype(np.int64), minlength=bins)
    return stats.chisquare(counts).pvalue


@pytest.mark.parametrize("rng", [np.random.default_rng(0), None], ids=["seeded", "secrets"])
def test_every_share_is_uniform_whatever_the_secret(rng):
    m, n = 20_000, 3
    shares_a = share(encode(np.full(m, 0.5)), n, rng=rng)  # (n, m)
    shares_b = share(encode(np.full(m, -1234.5)), n, rng=rng)
    for j in range(n):  # the drawn shares and the computed last one
        assert _chi2_pvalue(shares_a[j]) > 1e-3
        assert stats.kstest(shares_a[j].astype(np.float64) / P, "uniform").pvalue > 1e-3
        # two different secrets: their shares are indistinguishable
        assert stats.ks_2samp(shares_a[j].astype(np.float64), shares_b[j].astype(np.float64)).pvalue > 1e-3


def test_the_uniformity_test_has_power():
    # the same tests reject what is not uniform: encoded values themselves, and a biased share
    x = encode(np.random.default_rng(0).normal(0, 1, 20_000))
    assert _chi2_pvalue(x) < 1e-6
    biased = share(encode(np.full(20_000, 0.5)), 2, rng=np.random.default_rng(0))[0] // np.uint64(2)
    assert stats.kstest(biased.astype(np.float64) / P, "uniform").pvalue < 1e-6


@pytest.mark.parametrize("n", [1, 3, 8])
def test_secure_sum_equals_plain_sum(n):
    rng = np.random.default_rng(n)
    values = [{"w": rng.normal(0, 10, (4, 3)).astype(np.float32), "b": rng.normal(0, 1e-3, 3)} for _ in range(n)]
    out = secure_sum(values, rng=np.random.default_rng(0))
    assert out["w"].dtype == np.float32 and out["b"].dtype == np.float64
    for key in ("w", "b"):
        plain = np.sum([v[key].astype(np.float64) for v in values], axis=0)
        np.testing.assert_allclose(out[key], plain, atol=n * 2.0**-16, rtol=1e-6)


def test_jax_arrays_scalars_and_bfloat16_keep_their_dtypes():
    values = [{"a": jnp.full((2,), 0.5 * i, jnp.bfloat16), "b": jnp.float32(i)} for i in range(1, 4)]
    out = secure_sum(values, rng=np.random.default_rng(0))
    assert out["a"].dtype == jnp.bfloat16 and out["a"].tolist() == [3.0, 3.0]
    assert out["b"].shape == () and float(out["b"]) == 6.0


def test_aggregate_partials_are_column_sums():
    rng = np.random.default_rng(2)
    shares = [share(encode(np.array([float(i), -2.0 * i])), 3, rng=rng) for i in range(3)]
    partials = aggregate(shares)
    for j in range(3):
        assert partials[j].tolist() == [sum(int(s[j, k]) for s in shares) % P for k in range(2)]
    np.testing.assert_allclose(decode(reconstruct(partials)), [3.0, -6.0])


def test_range_errors_are_clear():
    limit = fixed_point_range(16)
    with pytest.raises(ValueError, match=r"index \(1,\): 2e\+13 overflows the fixed-point range"):
        encode(np.array([0.0, 2e13]))
    with pytest.raises(ValueError, match="overflows"):
        encode(np.array([-2e13]))
    with pytest.raises(ValueError, match=r"\['w'\] index \(0,\): nan is not finite"):
        encode({"w": np.array([np.nan])})
    with pytest.raises(ValueError, match=r"underflows the fixed-point precision 2\^-16"):
        encode(np.array([1e-6]), underflow="raise")
    with pytest.raises(TypeError, match="float arrays"):
        encode(np.array([1, 2], np.int32))
    # the edge of the range still decodes, with its sign
    edge = encode(np.array([limit, -limit]))
    np.testing.assert_array_equal(decode(edge, dtype=np.float64), [limit, -limit])
    # 8 workers share the range: each value must be 8 times smaller
    ok = fixed_point_range(16, 8)
    np.testing.assert_allclose(secure_sum([np.array([ok])] * 8, rng=np.random.default_rng(0)), [8 * ok], rtol=1e-12)
    with pytest.raises(ValueError, match="overflows"):
        secure_sum([np.array([ok * 1.01])] * 8, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="not a field element"):
        decode(np.array([P], np.uint64))
    with pytest.raises(ValueError, match="4 workers need 4 shares"):
        aggregate([share(encode(np.zeros(2)), 3, rng=np.random.default_rng(0))] * 4)


def _classifier_grads(n):
    """Each of ``n`` workers' gradients of a real TextClassifier on its own batch (one vmapped call)."""
    model = TextClassifier(vocab_size=30, num_classes=3, embed_dim=8, hidden_size=8)
    params = model.init(jax.random.key(0), jnp.ones((2, 6), jnp.int32))["params"]

    def loss(p, ids, labels):
        return optax.softmax_cross_entropy_with_integer_labels(model.apply({"params": p}, ids), labels).mean()

    keys = jax.random.split(jax.random.key(1), 2)
    ids = jax.random.randint(keys[0], (n, 4, 6), 1, 30, dtype=jnp.int32)  # (workers, B, T)
    labels = jax.random.randint(keys[1], (n, 4), 0, 3, dtype=jnp.int32)
    stacked = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, 0)))(params, ids, labels)
    return [jax.tree.map(lambda g: np.asarray(g[i]), stacked) for i in range(n)]


def test_classifier_gradients_across_8_devices():
    assert jax.device_count() >= 8
    n = 8
    grads = _classifier_grads(n)
    plain = jax.tree.map(lambda *g: np.sum(np.stack(g).astype(np.float64), axis=0), *grads)
    on_devices, partials = secure_sum_across_devices(grads, rng=np.random.default_rng(0), return_partials=True)
    on_host = secure_sum(grads, rng=np.random.default_rng(0))
    assert jax.tree.structure(on_devices) == jax.tree.structure(grads[0])
    for got, host, want in zip(jax.tree.leaves(on_devices), jax.tree.leaves(on_host), jax.tree.leaves(plain)):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=n * 2.0**-16, rtol=0)
        np.testing.assert_array_equal(got, host)  # same shares → identical results
    # the devices' partial sums are exactly the host's (the all-to-all routed every share right)
    limit = fixed_point_range(16, n)
    rng = np.random.default_rng(0)
    shares = [share(encode(g, max_abs=limit), n, rng=rng) for g in grads]
    for a, b in zip(jax.tree.leaves(partials), jax.tree.leaves(aggregate(shares))):
        np.testing.assert_array_equal(a, b)


def test_across_devices_checks_its_inputs():
    with pytest.raises(ValueError, match="3 workers need a one-axis mesh of 3 devices"):
        from lstmjax.parallel import make_mesh

        secure_sum_across_devices([np.zeros(2)] * 3, make_mesh(2))
    with pytest.raises(ValueError, match="worker 1 has a leaf of shape"):
        secure_sum([np.zeros(2), np.zeros(3)])
