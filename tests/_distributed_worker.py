"""One process of a multi-process data-parallel run (spawned by ``test_parallel.py``).

Usage: python _distributed_worker.py PROCESS_ID NUM_PROCESSES PORT OUT.npz

Each process holds 2 CPU devices and feeds only its own rows of every global batch; the global
batches are the same as :func:`global_batches` gives the single-process reference.
"""

import sys

import jax
import numpy as np

from lstmjax import TextClassifier
from lstmjax.parallel import DataParallel, initialize_distributed
from lstmjax.training.state import create_train_state, make_optimizer

MODEL = TextClassifier(vocab_size=50, num_classes=3, embed_dim=8, hidden_size=8, embed_dropout=0.2)
GLOBAL_BATCH, STEPS = 12, 3


def global_batches():
    rng = np.random.default_rng(0)
    for _ in range(STEPS):
        lengths = rng.integers(0, 7, GLOBAL_BATCH).astype(np.int32)
        ids = rng.integers(2, 50, (GLOBAL_BATCH, 6)).astype(np.int32)
        ids[np.arange(6)[None] >= lengths[:, None]] = 0
        yield {"token_ids": ids, "lengths": lengths, "labels": rng.integers(0, 3, GLOBAL_BATCH).astype(np.int32)}


def initial_state():
    return create_train_state(MODEL, jax.random.key(0), make_optimizer("adam", 1e-2))


def train(dp: DataParallel, part=lambda b: b):
    state = dp.put_state(initial_state())
    step = dp.train_step()
    for batch in global_batches():
        state, _ = step(state, dp.put_batch(part(batch)))
    return dp.get_state(state)


if __name__ == "__main__":
    jax.config.update("jax_num_cpu_devices", 2)  # before JAX starts its backends
    pid, count, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    initialize_distributed(f"127.0.0.1:{port}", count, pid)
    assert jax.process_count() == count and jax.device_count() == 2 * count
    local = GLOBAL_BATCH // count
    state = train(DataParallel.create("mesh"), lambda b: {k: v[pid * local:(pid + 1) * local] for k, v in b.items()})
    leaves = [np.asarray(x.addressable_data(0)) for x in jax.tree.leaves(state.params)]
    if pid == 0:
        np.savez(out, *leaves)
    jax.distributed.shutdown()
