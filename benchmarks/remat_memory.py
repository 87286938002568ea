"""Peak memory of a training step with and without gradient checkpointing (``remat_chunk``).

    python benchmarks/remat_memory.py [--seq-len 2000] [--batch-size 32] [--chunks 0 50 200]

Each setting runs in a fresh subprocess (so peaks do not mix): it builds the document's
classifier (``TextClassifier(20000, 2)``, LSTM 128) with ``remat_chunk`` (0 = off), compiles and
runs two jitted training steps (``train_step``, state donated) on full-length random sequences of
``--seq-len`` tokens and prints the process's peak resident memory (``ru_maxrss``) and the step
time. The baseline (the interpreter, JAX, the compiled program) is measured the same way with
``--seq-len 1``. Expected runtime: about a minute at the defaults on 2 CPU cores.
"""

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import jax, jax.numpy as jnp, numpy as np
from lstmjax import TextClassifier
from lstmjax.training.state import create_train_state, make_optimizer
from lstmjax.training.steps import train_step
T, B, chunk = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
model = TextClassifier(20000, 2, remat_chunk=chunk or None)
state = create_train_state(model, jax.random.key(0), make_optimizer())
rng = np.random.default_rng(0)
batch = {"token_ids": jnp.asarray(rng.integers(2, 20000, (B, T)).astype(np.int32)),
         "lengths": jnp.full((B,), T, jnp.int32), "labels": jnp.asarray(rng.integers(0, 2, B).astype(np.int32))}
step = jax.jit(lambda s, b: train_step(s, b, jax.random.key(1)), donate_argnums=0)
state, m = step(state, batch); jax.block_until_ready(state)
t = time.perf_counter(); state, m = step(state, batch); jax.block_until_ready(state); dt = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
print(json.dumps({"peak_mib": peak, "step_s": dt,  # ru_maxrss: bytes on macOS, KiB on Linux
                  "loss": float(m["loss_sum"]) / B}))
"""


def measure(seq_len: int, batch: int, chunk: int) -> dict:
    """Peak RSS (MiB), step seconds and loss of one subprocess run (POSIX only: ``resource``)."""
    if sys.platform == "win32":
        raise RuntimeError("remat_memory measures peak memory with the resource module, which Windows lacks")
    out = subprocess.run([sys.executable, "-c", CHILD, str(seq_len), str(batch), str(chunk)], capture_output=True,
                         text=True, env={**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")})
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seq-len", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--chunks", type=int, nargs="+", default=[0, 50, 200], help="remat_chunk values (0 = off)")
    p.add_argument("--json", default=None, metavar="PATH")
    args = p.parse_args(argv)
    base = measure(1, args.batch_size, 0)
    print(f"T={args.seq_len}, batch {args.batch_size}; baseline (T=1) peak {base['peak_mib']:.0f} MiB")
    rows = []
    for chunk in args.chunks:
        r = measure(args.seq_len, args.batch_size, chunk)
        r.update(chunk=chunk, above_baseline_mib=r["peak_mib"] - base["peak_mib"])
        rows.append(r)
        print(f"remat_chunk={chunk or 'off':>5}: peak {r['peak_mib']:7.0f} MiB ({r['above_baseline_mib']:6.0f} above "
              f"baseline), step {r['step_s']:.2f} s, loss {r['loss']:.6f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"baseline": base, "rows": rows, "seq_len": args.seq_len, "batch": args.batch_size}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
