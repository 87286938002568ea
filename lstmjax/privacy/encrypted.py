"""Homomorphic encryption (document §9.3: 同态加密): compute on data that stays encrypted.

Paillier encryption (the ``phe`` package, ``pip install lstmjax[he]``) is *additively*
homomorphic: with ``[x]`` the ciphertext of ``x``,

* ``[x] ⊕ [y] = [x + y]`` (a product of ciphertexts mod ``n²``), and
* ``w ⊗ [x] = [w · x]`` for a plaintext ``w`` (a power mod ``n²``),

but two ciphertexts cannot be multiplied. That is enough for two lessons:

1. **Encrypted aggregation** (:func:`encrypted_aggregate`): every worker encrypts its gradient
   vector with the key holder's public key, the server adds the ciphertexts without being able
   to read any of them, and only the key holder decrypts, and sees only the sum.
2. **Encrypted inference of the last layer** (:func:`encrypted_inference`): the client runs the
   model up to the pooled features ``h`` (:func:`pooled_features`), encrypts them and sends
   ``[h]``; the server, which holds the dense layer ``W, b`` in plaintext, returns
   ``[W·h + b] = ⊕_f W[f, c] ⊗ [h_f] ⊕ b_c``; the client decrypts the logits. The server never
   sees ``h`` nor the logits. (The nonlinear LSTM cannot be evaluated this way: Paillier has no
   ciphertext × ciphertext product.)

Floats are encoded by ``phe`` as ``mantissa · 16^exponent``. Encrypting everything with one
fixed ``precision`` (default ``2^-32``) gives every ciphertext the same exponent, so additions
need no rescaling and the rounding error is at most ``precision / 2`` per value.

The price is measured by :func:`he_cost`: each float (4 bytes) becomes a ciphertext of
``2 · key_size`` bits (512 bytes at the default 2048-bit key, 128× larger), and an encryption
costs milliseconds where a float addition costs nanoseconds. 2048 bits is the usual minimum
for real use; the tests use 512-bit keys only to run fast (such keys are breakable).

Example:
  >>> import numpy as np
  >>> public, private = generate_keypair(512)
  >>> workers = [np.array([0.5, -1.0]), np.array([0.25, 2.0])]
  >>> encrypted_aggregate(workers, public, private).tolist()
  [0.75, 1.0]
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

__all__ = [
    "HECost",
    "ckks_inference",
    "decrypt_vector",
    "encrypt_vector",
    "encrypted_aggregate",
    "encrypted_dense",
    "encrypted_inference",
    "generate_keypair",
    "he_cost",
    "pooled_features",
    "sum_encrypted",
]

DEFAULT_PRECISION = 2.0**-32


def _phe():
    try:
        from phe import paillier
    except ImportError as e:  # an optional dependency
        raise ImportError("lstmjax.encrypted needs the 'phe' package: pip install 'lstmjax[he]'") from e
    return paillier


def generate_keypair(key_size: int = 2048):
    """A Paillier ``(public_key, private_key)`` pair with a ``key_size``-bit modulus ``n``.

    2048 bits (the default) is the smallest size considered secure; smaller keys (e.g. 512 in
    the tests) are only for speed. Generation takes about a second at 2048 bits.

    Example:
      >>> public, private = generate_keypair(512)
      >>> public.n.bit_length()
      512
    """
    if not isinstance(key_size, int) or key_size < 128 or key_size % 8:
        raise ValueError(f"key_size must be a multiple of 8 of at least 128 bits; got {key_size!r}")
    return _phe().generate_paillier_keypair(n_length=key_size)


def _as_vector(x: Any, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"{what} must be a vector <float>[d]; got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise TypeError(f"{what} must be numbers; got dtype {x.dtype}")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError(f"{what}[{int(np.argmin(np.isfinite(x)))}] is not finite; it cannot be encrypted")
    return x


def encrypt_vector(public_key, x: Any, *, precision: float = DEFAULT_PRECISION) -> list:
    """Encrypts each entry of ``x <float>[d]``: a list of ``d`` ``phe.EncryptedNumber``.

    All entries share the exponent set by ``precision`` (rounding error ≤ ``precision / 2``),
    so that the server can add them without rescaling.

    Example:
      >>> public, private = generate_keypair(512)
      >>> enc = encrypt_vector(public, [1.5, -2.0])
      >>> len(enc), decrypt_vector(private, enc).tolist()
      (2, [1.5, -2.0])
    """
    x = _as_vector(x, "x")
    return [public_key.encrypt(float(v), precision=precision) for v in x]


def decrypt_vector(private_key, encrypted: Sequence[Any]) -> np.ndarray:
    """Decrypts a list of ``EncryptedNumber`` into ``<float64>[d]``.

    Example:
      >>> public, private = generate_keypair(512)
      >>> decrypt_vector(private, encrypt_vector(public, [0.25])).dtype
      dtype('float64')
    """
    return np.array([private_key.decrypt(c) for c in encrypted], np.float64)


def sum_encrypted(vectors: Sequence[Sequence[Any]]) -> list:
    """The server's step: elementwise ``⊕`` of encrypted vectors of equal length.

    Example:
      >>> public, private = generate_keypair(512)
      >>> total = sum_encrypted([encrypt_vector(public, [1.0, 2.0]), encrypt_vector(public, [3.0, 4.0])])
      >>> decrypt_vector(private, total).tolist()
      [4.0, 6.0]
    """
    vectors = [list(v) for v in vectors]
    if not vectors:
        raise ValueError("sum_encrypted needs at least one encrypted vector")
    lengths = {len(v) for v in vectors}
    if len(lengths) != 1:
        raise ValueError(f"encrypted vectors must have one length; got lengths {sorted(lengths)}")
    keys = {v[0].public_key for v in vectors if v}
    if len(keys) > 1:
        raise ValueError("the encrypted vectors use different public keys; they cannot be added")
    return [functools.reduce(lambda a, b: a + b, column) for column in zip(*vectors)]


def encrypted_aggregate(vectors: Sequence[Any], public_key, private_key, *,
                        precision: float = DEFAULT_PRECISION) -> np.ndarray:
    """Workers encrypt, the server adds ciphertexts, the key holder decrypts: ``Σ_i x_i``.

    Args:
      vectors: one ``<float>[d]`` per worker (e.g. a flattened small gradient).
      public_key, private_key: from :func:`generate_keypair`.
      precision: see :func:`encrypt_vector`.

    Returns:
      ``<float64>[d]``, within ``len(vectors) · precision / 2`` of the plaintext sum.

    Example:
      >>> public, private = generate_keypair(512)
      >>> encrypted_aggregate([[1.0], [2.0], [-0.5]], public, private).tolist()
      [2.5]
    """
    encrypted = [encrypt_vector(public_key, v, precision=precision) for v in vectors]  # on each worker
    return decrypt_vector(private_key, sum_encrypted(encrypted))  # server adds; the key holder decrypts


def encrypted_dense(encrypted_h: Sequence[Any], kernel: Any, bias: Any, *,
                    precision: float = DEFAULT_PRECISION) -> list:
    """The server's dense layer on encrypted features: ``[z_c] = ⊕_f kernel[f, c] ⊗ [h_f] ⊕ bias[c]``.

    Args:
      encrypted_h: ``F`` ``EncryptedNumber`` (one example's pooled features).
      kernel: plaintext ``<float>[F, C]`` (Flax ``Dense`` layout: ``z = h @ kernel + bias``).
      bias: plaintext ``<float>[C]``.
      precision: the encoding precision of the weights (rounding ≤ ``precision / 2`` each).

    Returns:
      ``C`` ``EncryptedNumber``: the encrypted logits.

    Example:
      >>> public, private = generate_keypair(512)
      >>> z = encrypted_dense(encrypt_vector(public, [1.0, 2.0]), [[1.0, 0.5], [-1.0, 0.25]], [0.0, 1.0])
      >>> decrypt_vector(private, z).tolist()
      [-1.0, 2.0]
    """
    encoded_number = _phe().EncodedNumber
    kernel = np.asarray(kernel, np.float64)
    bias = _as_vector(bias, "bias")
    encrypted_h = list(encrypted_h)
    if kernel.ndim != 2 or kernel.shape != (len(encrypted_h), bias.shape[0]):
        raise ValueError(f"kernel must be <float>[F, C] = [{len(encrypted_h)}, {bias.shape[0]}] for "
                         f"{len(encrypted_h)} features and {bias.shape[0]} biases; got shape {kernel.shape}")
    if not np.isfinite(kernel).all():
        raise ValueError("kernel has non-finite values")
    if not encrypted_h:
        raise ValueError("encrypted_h is empty")
    public_key = encrypted_h[0].public_key
    logits = []
    for c in range(kernel.shape[1]):
        terms = [h * encoded_number.encode(public_key, float(w), precision=precision)
                 for h, w in zip(encrypted_h, kernel[:, c])]
        logits.append(functools.reduce(lambda a, b: a + b, terms) + float(bias[c]))
    return logits


def pooled_features(model, variables, token_ids: Any, lengths: Any | None = None) -> tuple[jax.Array, jax.Array]:
    """The input of a :class:`lstmjax.TextClassifier`'s final dense layer, and the logits.

    Captured with ``flax.linen.intercept_methods`` on the submodule named ``dense``, so it works
    for any pooling and cell. Deterministic (no dropout).

    Args:
      model: a ``TextClassifier``.
      variables: ``{"params": ...}``.
      token_ids: ``<int32>[batch, time]``; lengths: ``<int32>[batch]`` or None.

    Returns:
      ``h <float32>[batch, features]`` and ``logits <float32>[batch, num_classes]``
      (``logits == h @ kernel + bias``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from lstmjax import TextClassifier
      >>> model = TextClassifier(vocab_size=10, num_classes=2, embed_dim=4, hidden_size=3)
      >>> ids = jnp.ones((2, 5), jnp.int32)
      >>> variables = model.init(jax.random.key(0), ids)
      >>> h, logits = pooled_features(model, variables, ids)
      >>> h.shape, logits.shape
      ((2, 3), (2, 2))
    """
    import flax.linen as nn

    captured = {}

    def grab(next_fun, args, kwargs, context):
        module = context.module
        if context.method_name == "__call__" and isinstance(module, nn.Dense) and module.name == "dense" \
                and module.scope is not None and tuple(module.scope.path) == ("dense",):
            captured["h"] = args[0]
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(grab):
        logits = model.apply(variables, token_ids, lengths)
    if "h" not in captured:
        raise ValueError(f"{type(model).__name__} has no top-level Dense submodule named 'dense'")
    return captured["h"], logits


def encrypted_inference(h: Any, kernel: Any, bias: Any, public_key, private_key, *,
                        precision: float = DEFAULT_PRECISION) -> np.ndarray:
    """Client encrypts each row of ``h``, server applies :func:`encrypted_dense`, client decrypts.

    Args:
      h: pooled features ``<float>[batch, F]`` (from :func:`pooled_features`).
      kernel, bias: the server's ``<float>[F, C]`` and ``<float>[C]`` (``params["dense"]``).
      public_key, private_key: the client's keys (the server gets only the public key).

    Returns:
      Logits ``<float64>[batch, C]``, equal to ``h @ kernel + bias`` within about
      ``F · precision · (max|h| + max|kernel|)``.

    Example:
      >>> public, private = generate_keypair(512)
      >>> encrypted_inference(np.array([[1.0, -1.0]]), np.eye(2), np.zeros(2), public, private).tolist()
      [[1.0, -1.0]]
    """
    h = np.asarray(h)
    if h.ndim != 2:
        raise ValueError(f"h must be <float>[batch, features]; got shape {h.shape}")
    rows = []
    for row in h:
        encrypted_row = encrypt_vector(public_key, row, precision=precision)  # client
        encrypted_logits = encrypted_dense(encrypted_row, kernel, bias, precision=precision)  # server
        rows.append(decrypt_vector(private_key, encrypted_logits))  # client
    return np.stack(rows) if rows else np.zeros((0, np.shape(bias)[0]), np.float64)


def ckks_inference(h: Any, kernel: Any, bias: Any, *, poly_modulus_degree: int = 8192,
                   scale_bits: int = 40) -> tuple[np.ndarray, int]:
    """The dense layer under CKKS (the ``tenseal`` package, optional): approximate but packed.

    CKKS encrypts a whole vector of reals in one ciphertext and supports vector × plaintext
    matrix products, at the price of a small approximation error (about ``2^-20`` here). The
    client keeps the secret key; the server gets a *public* context (serialised without the
    secret key) and the serialised ciphertext of each row of ``h``, computes ``[h]·W + b`` and
    sends back a ciphertext only the client can decrypt.

    Args:
      h: ``<float>[batch, F]`` features; kernel: ``<float>[F, C]``; bias: ``<float>[C]``.
      poly_modulus_degree: the ring size (8192: up to 4096 values per ciphertext, ~128-bit security).
      scale_bits: the fixed-point scale of the encoding.

    Returns:
      ``(logits <float64>[batch, C], bytes of one encrypted row of h)``.

    Raises:
      ImportError: without ``tenseal`` (``pip install tenseal``; wheels exist only for some
        Python versions and platforms).

    Example:
      >>> import pytest; ts = pytest.importorskip("tenseal")
      >>> logits, nbytes = ckks_inference(np.array([[1.0, -1.0]]), np.eye(2), np.zeros(2))
      >>> bool(np.allclose(logits, [[1.0, -1.0]], atol=1e-4)), nbytes > 100_000
      (True, True)
    """
    try:
        import tenseal as ts
    except ImportError as e:
        raise ImportError("ckks_inference needs the optional 'tenseal' package: pip install tenseal") from e
    h = np.asarray(h, np.float64)
    kernel = np.asarray(kernel, np.float64)
    bias = _as_vector(bias, "bias")
    if h.ndim != 2 or kernel.shape != (h.shape[1], bias.shape[0]):
        raise ValueError(f"need h <float>[batch, F], kernel [F, C], bias [C]; got {h.shape}, {kernel.shape}, {bias.shape}")
    # client: keys, and a public copy of the context for the server
    client = ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=poly_modulus_degree,
                        coeff_mod_bit_sizes=[60, scale_bits, scale_bits, 60])
    client.global_scale = 2.0**scale_bits
    client.generate_galois_keys()
    server = ts.context_from(client.serialize(save_secret_key=False))
    rows, nbytes = [], 0
    for row in h:
        message = ts.ckks_vector(client, row.tolist()).serialize()  # client → server
        nbytes = len(message)
        encrypted = ts.ckks_vector_from(server, message)
        reply = (encrypted.matmul(kernel.tolist()) + bias.tolist()).serialize()  # server → client
        rows.append(ts.ckks_vector_from(client, reply).decrypt())  # client
    return np.array(rows, np.float64).reshape(len(rows), bias.shape[0]), nbytes


class HECost(NamedTuple):
    """What Paillier costs per value at one key size (seconds are wall-clock on this machine).

    Attributes:
      key_size: modulus bits.
      keygen_s: seconds to generate the key pair.
      encrypt_s: seconds per encryption of one float.
      add_s: seconds per ciphertext ⊕ ciphertext.
      scalar_mul_s: seconds per plaintext float ⊗ ciphertext.
      decrypt_s: seconds per decryption.
      plain_add_s: seconds per float addition in NumPy, for scale.
      ciphertext_bytes: bytes of one ciphertext (``2 · key_size / 8``).
      expansion: ``ciphertext_bytes / 4`` (a float32 is 4 bytes).
      gmpy2: whether ``phe`` used ``gmpy2`` for its big-integer arithmetic (about 25× faster
        than pure Python here; ``pip install gmpy2``, part of the ``he`` extra).
    """

    key_size: int
    keygen_s: float
    encrypt_s: float
    add_s: float
    scalar_mul_s: float
    decrypt_s: float
    plain_add_s: float
    ciphertext_bytes: int
    expansion: float
    gmpy2: bool

    def __str__(self) -> str:
        return (f"Paillier {self.key_size}-bit: encrypt {self.encrypt_s * 1e3:.2f} ms, add {self.add_s * 1e6:.1f} µs, "
                f"scalar × {self.scalar_mul_s * 1e3:.2f} ms, decrypt {self.decrypt_s * 1e3:.2f} ms per value; "
                f"{self.ciphertext_bytes} bytes per value ({self.expansion:.0f}× a float32); "
                f"a NumPy float add takes {self.plain_add_s * 1e9:.2f} ns"
                f"{'' if self.gmpy2 else ' (pure-Python big integers: install gmpy2 for ~25x speed)'}")


def he_cost(key_size: int = 2048, num_values: int = 16, *, seed: int = 0) -> HECost:
    """Measures Paillier's cost per value: encrypt, add, plaintext multiply, decrypt, bytes.

    Args:
      key_size: modulus bits (default 2048; pass e.g. 512 for a quick look).
      num_values: how many random values to time each operation over.
      seed: for the random values.

    Returns:
      A :class:`HECost`.

    Example:
      >>> cost = he_cost(512, num_values=4)
      >>> cost.key_size, cost.ciphertext_bytes, cost.expansion
      (512, 128, 32.0)
    """
    if num_values < 1:
        raise ValueError(f"num_values must be ≥ 1; got {num_values}")
    x = np.random.default_rng(seed).standard_normal((2, num_values))
    start = time.perf_counter()
    public, private = generate_keypair(key_size)
    keygen = time.perf_counter() - start

    def per_value(fn):
        start = time.perf_counter()
        out = fn()
        return out, (time.perf_counter() - start) / num_values

    a, encrypt_s = per_value(lambda: encrypt_vector(public, x[0]))
    b = encrypt_vector(public, x[1])
    total, add_s = per_value(lambda: [p + q for p, q in zip(a, b)])
    _, mul_s = per_value(lambda: [p * float(w) for p, w in zip(a, x[1])])
    decrypted, decrypt_s = per_value(lambda: decrypt_vector(private, total))
    if not np.allclose(decrypted, x[0] + x[1], atol=1e-8):
        raise RuntimeError("Paillier round trip failed: decrypted sums differ from the plaintext sums")
    y = np.random.default_rng(seed).standard_normal(1_000_000).astype(np.float32)
    times = []
    for _ in range(10):  # the fastest of 10: the least disturbed by other work on the machine
        start = time.perf_counter()
        y + y
        times.append(time.perf_counter() - start)
    plain = min(times) / y.size
    nbytes = math.ceil(public.nsquare.bit_length() / 8)  # a ciphertext is an element of Z_{n²}
    from phe import util

    return HECost(key_size, keygen, encrypt_s, add_s, mul_s, decrypt_s, plain, nbytes, nbytes / 4,
                  bool(getattr(util, "HAVE_GMP", False)))
