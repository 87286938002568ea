"""Paillier homomorphic encryption: encrypted sums and an encrypted dense layer equal their
plaintext results. Keys are 512 bits here only for speed (2048 is the library default)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("phe")

from lstmjax import TextClassifier  # noqa: E402
from lstmjax.privacy.encrypted import (  # noqa: E402
    DEFAULT_PRECISION,
    decrypt_vector,
    encrypt_vector,
    encrypted_aggregate,
    encrypted_dense,
    encrypted_inference,
    generate_keypair,
    he_cost,
    pooled_features,
    sum_encrypted,
)

TEST_KEY_BITS = 512  # insecure, fast; the library defaults to 2048


@pytest.fixture(scope="module")
def keys():
    return generate_keypair(TEST_KEY_BITS)


def test_encrypted_aggregation_equals_plain_sum(keys):
    public, private = keys
    rng = np.random.default_rng(0)
    workers = [rng.normal(0, 0.1, 12).astype(np.float32) for _ in range(4)]  # 4 workers' small gradients
    encrypted = [encrypt_vector(public, w) for w in workers]
    # what the server holds reveals nothing it can read: ciphertexts are large and randomised
    assert all(c.ciphertext() > 2**200 for c in encrypted[0])
    again = encrypt_vector(public, workers[0])
    assert [c.ciphertext() for c in again] != [c.ciphertext() for c in encrypted[0]]
    total = decrypt_vector(private, sum_encrypted(encrypted))
    plain = np.sum([w.astype(np.float64) for w in workers], axis=0)
    np.testing.assert_allclose(total, plain, atol=len(workers) * DEFAULT_PRECISION, rtol=0)
    np.testing.assert_allclose(encrypted_aggregate(workers, public, private), plain,
                               atol=len(workers) * DEFAULT_PRECISION, rtol=0)


@pytest.mark.parametrize("pooling,bidirectional", [("last", False), ("mean", True)])
def test_pooled_features_feed_the_dense_layer(pooling, bidirectional):
    model = TextClassifier(vocab_size=20, num_classes=3, embed_dim=4, hidden_size=5, pooling=pooling,
                           bidirectional=bidirectional)
    ids = jnp.array([[3, 4, 5, 0], [6, 7, 0, 0]], jnp.int32)
    variables = model.init(jax.random.key(0), ids)
    h, logits = pooled_features(model, variables, ids)
    assert h.shape == (2, 10 if bidirectional else 5)
    dense = variables["params"]["dense"]
    np.testing.assert_allclose(h @ dense["kernel"] + dense["bias"], logits, atol=1e-6)
    np.testing.assert_allclose(logits, model.apply(variables, ids), atol=1e-6)


def test_encrypted_inference_equals_plaintext_logits(keys):
    public, private = keys
    model = TextClassifier(vocab_size=20, num_classes=2, embed_dim=4, hidden_size=6)
    ids = jnp.array([[3, 4, 5, 9], [6, 7, 0, 0], [11, 0, 0, 0]], jnp.int32)
    variables = model.init(jax.random.key(1), ids)
    h, logits = pooled_features(model, variables, ids)
    dense = variables["params"]["dense"]
    got = encrypted_inference(np.asarray(h), np.asarray(dense["kernel"]), np.asarray(dense["bias"]), public, private)
    reference = np.asarray(h, np.float64) @ np.asarray(dense["kernel"], np.float64) + np.asarray(dense["bias"], np.float64)
    np.testing.assert_allclose(got, reference, atol=1e-8, rtol=0)
    np.testing.assert_allclose(got, logits, atol=1e-5)
    assert (got.argmax(-1) == np.asarray(logits).argmax(-1)).all()


def test_encrypted_dense_by_hand(keys):
    public, private = keys
    z = encrypted_dense(encrypt_vector(public, [2.0, -1.0, 0.5]), [[1.0, -2.0], [3.0, 0.0], [-4.0, 0.25]], [0.5, -0.5])
    np.testing.assert_allclose(decrypt_vector(private, z), [2 - 3 - 2 + 0.5, -4 + 0.125 - 0.5], atol=1e-9)


def test_bad_input_is_refused(keys):
    public, _ = keys
    other_public, _ = generate_keypair(TEST_KEY_BITS)
    with pytest.raises(ValueError, match="one length"):
        sum_encrypted([encrypt_vector(public, [1.0]), encrypt_vector(public, [1.0, 2.0])])
    with pytest.raises(ValueError, match="different public keys"):
        sum_encrypted([encrypt_vector(public, [1.0]), encrypt_vector(other_public, [1.0])])
    with pytest.raises(ValueError, match="kernel must be <float>"):
        encrypted_dense(encrypt_vector(public, [1.0, 2.0]), np.ones((3, 2)), np.zeros(2))
    with pytest.raises(ValueError, match=r"x\[1\] is not finite"):
        encrypt_vector(public, [1.0, np.inf])
    with pytest.raises(ValueError, match="vector"):
        encrypt_vector(public, np.ones((2, 2)))
    with pytest.raises(ValueError, match="key_size"):
        generate_keypair(100)


def test_cost_is_measured(keys, monkeypatch):
    """What he_cost computes from its clock, checked with a clock that ticks 1 s per reading
    (no timing relation is asserted: speed belongs to benchmarks)."""
    import itertools

    import lstmjax.privacy.encrypted as enc

    ticks = itertools.count()
    monkeypatch.setattr(enc.time, "perf_counter", lambda: float(next(ticks)))
    cost = he_cost(TEST_KEY_BITS, num_values=4)
    assert cost.key_size == TEST_KEY_BITS and cost.ciphertext_bytes == 2 * TEST_KEY_BITS // 8
    assert cost.expansion == cost.ciphertext_bytes / 4
    assert cost.keygen_s == 1.0  # one reading before, one after
    for field in ("encrypt_s", "add_s", "scalar_mul_s", "decrypt_s"):
        assert getattr(cost, field) == 1.0 / 4  # one interval over 4 values
    assert cost.plain_add_s == 1.0 / 1_000_000  # the fastest of 10 one-tick intervals, per element
    assert "bytes per value" in str(cost)
    from phe import util

    assert cost.gmpy2 == util.HAVE_GMP


def test_ckks_dense_layer_approximates_plaintext():
    pytest.importorskip("tenseal")
    from lstmjax.privacy.encrypted import ckks_inference

    rng = np.random.default_rng(0)
    h, kernel, bias = rng.normal(size=(2, 8)), rng.normal(size=(8, 3)), rng.normal(size=3)
    logits, nbytes = ckks_inference(h, kernel, bias)
    np.testing.assert_allclose(logits, h @ kernel + bias, atol=1e-3)
    assert nbytes > 8 * 4 * 100  # far larger than the 8 float32 it carries
