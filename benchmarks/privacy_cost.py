"""What privacy costs: secure aggregation and homomorphic encryption against the plain sum.

    python benchmarks/privacy_cost.py [--workers 8] [--vocab 2000] [--dim 64] [--key-sizes 1024 2048]

Prints, measured side by side on this machine:

* secret-shared aggregation (:func:`lstmjax.privacy.secure.secure_sum` on the host and
  :func:`lstmjax.parallel.secure.secure_sum_across_devices` over ``--workers`` simulated CPU devices) of a
  real TextClassifier's gradients, against ``np.sum``: seconds and the ratio;
* Paillier (:func:`lstmjax.privacy.encrypted.he_cost`) per value at each key size, and the ratio of an
  encryption to a float addition;
* CKKS (``tenseal``, when installed): the encrypted dense layer and the bytes of one ciphertext.

Simulating ``n`` workers in one process holds ``n²`` shares of every value (``8 n² · params``
bytes), so keep the model small here.
"""

import argparse
import os
import time

import jax

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--workers", type=int, default=8)
parser.add_argument("--vocab", type=int, default=2000)
parser.add_argument("--dim", type=int, default=64)
parser.add_argument("--key-sizes", type=int, nargs="+", default=[1024, 2048])
args = parser.parse_args()
jax.config.update("jax_num_cpu_devices", args.workers)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from lstmjax import TextClassifier  # noqa: E402
from lstmjax.parallel.secure import secure_sum_across_devices  # noqa: E402
from lstmjax.privacy.encrypted import ckks_inference, he_cost  # noqa: E402
from lstmjax.privacy.secure import secure_sum


def timed(fn, repeat=3):
    fn()  # warm up (compilation)
    start = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    return out, (time.perf_counter() - start) / repeat


model = TextClassifier(args.vocab, 2, embed_dim=args.dim, hidden_size=args.dim)
params = model.init(jax.random.key(0), jnp.ones((1, 8), jnp.int32))["params"]
ids = jax.random.randint(jax.random.key(1), (args.workers, 16, 20), 1, args.vocab, dtype=jnp.int32)
labels = jax.random.randint(jax.random.key(2), (args.workers, 16), 0, 2, dtype=jnp.int32)


def loss(p, x, y):
    return optax.softmax_cross_entropy_with_integer_labels(model.apply({"params": p}, x), y).mean()


stacked = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, 0)))(params, ids, labels)
grads = [jax.tree.map(lambda g: np.asarray(g[i]), stacked) for i in range(args.workers)]
size = sum(x.size for x in jax.tree.leaves(grads[0]))
print(f"{args.workers} workers, {size:,} gradient values each, {os.cpu_count()} CPU cores, "
      f"{jax.device_count()} devices")

plain, t_plain = timed(lambda: jax.tree.map(lambda *g: np.sum(np.stack(g), axis=0), *grads))
host, t_host = timed(lambda: secure_sum(grads, rng=np.random.default_rng(0)))
dev, t_dev = timed(lambda: secure_sum_across_devices(grads, rng=np.random.default_rng(0)))
err = max(float(np.abs(a - b).max()) for a, b in zip(jax.tree.leaves(dev), jax.tree.leaves(plain)))
print(f"plain sum            {t_plain * 1e3:9.1f} ms")
print(f"secure_sum (host)    {t_host * 1e3:9.1f} ms   {t_host / t_plain:7.1f}x plain")
print(f"secure_sum (devices) {t_dev * 1e3:9.1f} ms   {t_dev / t_plain:7.1f}x plain   max error {err:.2e} "
      f"(bound {args.workers * 2.0**-17:.2e})")
_, t_secrets = timed(lambda: secure_sum(grads), repeat=1)
print(f"secure_sum (host, OS CSPRNG) {t_secrets * 1e3:9.1f} ms")

for key_size in args.key_sizes:
    cost = he_cost(key_size, num_values=16)
    print(cost)
    print(f"  one encryption = {cost.encrypt_s / cost.plain_add_s:,.0f} float additions; "
          f"encrypting one worker's {size:,} values would take {cost.encrypt_s * size / 60:,.1f} min "
          f"and {cost.ciphertext_bytes * size / 2**20:,.0f} MiB")

try:
    h = np.random.default_rng(0).normal(size=(4, args.dim))
    kernel, bias = np.asarray(params["dense"]["kernel"]), np.asarray(params["dense"]["bias"])
    (logits, nbytes), t_ckks = timed(lambda: ckks_inference(h, kernel, bias), repeat=1)
    print(f"CKKS dense layer: {t_ckks:.2f} s for {len(h)} examples, key generation included; {nbytes:,} bytes per encrypted "
          f"row of {args.dim} features, max error {np.abs(logits - (h @ kernel + bias)).max():.1e}")
except ImportError as e:
    print(f"CKKS skipped: {e}")
