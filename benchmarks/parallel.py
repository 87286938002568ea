"""Data-parallel training throughput: tokens/s on 1, 2, 4, 8 devices, pmap and mesh, as ratios.

    python benchmarks/parallel.py [--batch-size 256] [--seq-len 64] [--hidden 128] [--steps 5] [--rounds 5]

Times the jitted train step of :class:`lstmjax.parallel.DataParallel` (after compilation, each
step ended with ``block_until_ready``) for the document's classifier (``TextClassifier(20000, 2)``:
Embedding(20000, 128) → LSTM(128) → Dense(2)) on random token ids of one fixed length. The
configurations are interleaved round by round, so a noisy machine slows them all alike; each
row reports the median over rounds and its ratio to the single-device ("none") run measured in
the same process.

On a CPU the script asks JAX for 8 simulated host devices (``jax_num_cpu_devices``) before the
backend starts. They share the machine's cores: with C cores, D > C devices cannot run faster
than C. On a GPU host (``jax.devices()[0].platform == "gpu"``) the real devices are used and
device counts above what is visible are skipped.

``--json PATH`` also writes the rows (the tutorial ``06_data_parallel.md`` plots them).
"""

import argparse
import json
import os
import statistics
import sys
import time

import jax

if os.environ.get("JAX_PLATFORMS", "cpu") in ("", "cpu"):  # before the backend starts
    jax.config.update("jax_num_cpu_devices", 8)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from lstmjax import TextClassifier  # noqa: E402
from lstmjax.parallel import DataParallel  # noqa: E402
from lstmjax.training.state import create_train_state, make_optimizer  # noqa: E402


def random_batch(rng: np.random.Generator, batch_size: int, seq_len: int, vocab_size: int) -> dict:
    """Full-length random ids (no padding): ``token_ids <int32>[B, T]``, ``lengths``, ``labels``."""
    return {"token_ids": rng.integers(2, vocab_size, (batch_size, seq_len)).astype(np.int32),
            "lengths": np.full(batch_size, seq_len, np.int32),
            "labels": rng.integers(0, 2, batch_size).astype(np.int32)}


class Runner:
    """One configuration: its layout, its device-resident state, batches and compiled step."""

    def __init__(self, mode: str, devices: int, state, host_batches):
        self.name = "none" if mode == "none" else f"{mode} ×{devices}"
        self.mode, self.devices = mode, devices
        self.dp = DataParallel.create(mode, None if mode == "none" else devices)
        self.step = self.dp.train_step()
        # A private copy: in JAX 0.10 put_state's device_put to a replicated mesh sharding reuses the
        # buffers already on device 0, so the donating step would delete the caller's state.
        self.state = self.dp.put_state(jax.tree.map(jnp.copy, state))
        self.batches = [self.dp.put_batch(b) for b in host_batches]  # already on the devices
        self.compile_s = self._one_step(0)  # the first call traces and compiles
        # The second call can compile again: under pmap the state comes back with a different
        # sharding than put_state gave it (see the report's "2nd step" column).
        self.second_s = self._one_step(1)
        self.rates: list[float] = []

    def _one_step(self, i: int) -> float:
        start = time.perf_counter()
        self.state, m = self.step(self.state, self.batches[i % len(self.batches)])
        jax.block_until_ready((self.state, m))
        return time.perf_counter() - start

    def time_round(self, steps: int, tokens_per_step: int) -> float:
        """Tokens/s over ``steps`` steps, each waited for (so no two steps overlap)."""
        start = time.perf_counter()
        for i in range(steps):
            self.state, m = self.step(self.state, self.batches[i % len(self.batches)])
            jax.block_until_ready((self.state, m))
        rate = steps * tokens_per_step / (time.perf_counter() - start)
        self.rates.append(rate)
        return rate


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=256, help="global batch, a multiple of 8 (default 256)")
    p.add_argument("--seq-len", type=int, default=64, help="tokens per example (default 64)")
    p.add_argument("--hidden", type=int, default=128, help="LSTM size (default 128, the document's)")
    p.add_argument("--embed", type=int, default=128, help="embedding size (default 128)")
    p.add_argument("--vocab", type=int, default=20000, help="vocabulary size (default 20000)")
    p.add_argument("--steps", type=int, default=5, help="timed steps per configuration per round (default 5)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--devices", type=int, nargs="+", default=[2, 4, 8], help="device counts (default 2 4 8)")
    p.add_argument("--modes", nargs="+", default=["pmap", "mesh"], choices=["pmap", "mesh"])
    p.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    if args.batch_size % 8:
        p.error(f"--batch-size {args.batch_size} must divide by 8 (so every device count gets equal shards)")

    platform = jax.devices()[0].platform
    visible = jax.device_count()
    counts = [d for d in args.devices if d <= visible]
    skipped = [d for d in args.devices if d > visible]
    cores = os.cpu_count()
    print(f"jax {jax.__version__}, {visible} {platform} device(s) "
          f"({'simulated host devices' if platform == 'cpu' else jax.devices()[0].device_kind}), "
          f"os.cpu_count() = {cores}")
    print(f"model: TextClassifier({args.vocab}, 2, embed_dim={args.embed}, hidden_size={args.hidden}); "
          f"batch {args.batch_size} × {args.seq_len} tokens; {args.steps} steps × {args.rounds} rounds")
    if skipped:
        print(f"skipping {skipped} devices: only {visible} visible")

    model = TextClassifier(args.vocab, 2, embed_dim=args.embed, hidden_size=args.hidden)
    state = create_train_state(model, jax.random.key(0), make_optimizer("adam", 1e-3))
    rng = np.random.default_rng(0)
    host_batches = [random_batch(rng, args.batch_size, args.seq_len, args.vocab) for _ in range(2)]
    tokens = args.batch_size * args.seq_len

    configs = [("none", 1)] + [(m, d) for d in counts for m in args.modes]
    runners = [Runner(m, d, state, host_batches) for m, d in configs]
    for r in runners:  # one untimed warm-up round (caches, thread pools)
        r.time_round(1, tokens)
        r.rates.clear()
    for i in range(args.rounds):
        order = runners if i % 2 == 0 else runners[::-1]  # alternate the order too
        for r in order:
            r.time_round(args.steps, tokens)
        print(f"  round {i + 1}/{args.rounds}: " + ", ".join(f"{r.name} {r.rates[-1]:,.0f}" for r in runners),
              file=sys.stderr)

    base = statistics.median(runners[0].rates)
    rows = []
    print(f"\n{'config':<10} {'devices':>7} {'tokens/s (median)':>18} {'vs none':>8} {'min–max ratio':>14} "
          f"{'step ms':>8} {'1st step s':>10} {'2nd step s':>10}")
    for r in runners:
        med = statistics.median(r.rates)
        # per-round ratio to "none" in the same round: robust to drifts in machine load
        ratios = [a / b for a, b in zip(r.rates, runners[0].rates)]
        rows.append({"config": r.name, "mode": r.mode, "devices": r.devices, "tokens_per_s": med,
                     "ratio": med / base, "ratio_min": min(ratios), "ratio_max": max(ratios),
                     "step_ms": 1e3 * tokens / med, "compile_s": r.compile_s,
                     "second_step_s": r.second_s})
        print(f"{r.name:<10} {r.devices:>7} {med:>18,.0f} {med / base:>7.2f}× "
              f"{min(ratios):>6.2f}–{max(ratios):<6.2f} {1e3 * tokens / med:>8.1f} {r.compile_s:>10.2f} "
              f"{r.second_s:>10.2f}")
    print("1st step s: the first call (trace + compile + one step); 2nd step s: the second call, which "
          "shows a recompilation when the state's sharding changed after the first step.")
    if platform == "cpu":
        print(f"\nThese are {visible} simulated CPU devices sharing the same {cores} core(s): "
              f"a split over up to {cores} devices can use more cores than one XLA:CPU device does for "
              f"these small matrix products, but more than {cores} devices cannot speed up beyond the "
              "cores; extra devices only add sharding and all-reduce overhead. Real multi-device "
              "speed-ups need real devices (GPUs, TPUs, or several hosts).")
    else:
        print(f"\n{platform} devices are real and independent: the ratios measure data-parallel scaling "
              "at this per-device batch (batch / devices); a larger batch scales better.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"platform": platform, "cpu_count": cores, "batch_size": args.batch_size,
                       "seq_len": args.seq_len, "hidden": args.hidden, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
