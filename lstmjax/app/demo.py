"""``lstmjax demo``: the document's classifier built, checked against a Python loop of the cell, and timed."""

from __future__ import annotations

import argparse
import sys
import time

__all__ = ["demo"]


def demo(args: argparse.Namespace) -> int:
    """``lstmjax demo``: build the document's model, check its recurrent layer against a Python loop
    of the pure cell, and time a forward pass. Returns the exit status (1 if the check fails).

    Example:
      >>> import argparse
      >>> demo(argparse.Namespace(vocab=50, classes=2, embed=8, cell="gru", hidden=8, layers=1,
      ...                         bidirectional=False, batch_size=2, max_len=5, seed=0))  # doctest: +ELLIPSIS
      model: Embedding(50, 8) → GRU(8, layers=1, bidirectional=False) → Dense(2)
      ...
      0
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    from lstmjax.nn import TextClassifier, cells
    from lstmjax.nn.scan import scan_cell

    model = TextClassifier(
        vocab_size=args.vocab, num_classes=args.classes, embed_dim=args.embed, cell=args.cell,
        hidden_size=args.hidden, num_layers=args.layers, bidirectional=args.bidirectional,
    )
    rng = np.random.default_rng(args.seed)
    B, T = args.batch_size, args.max_len
    lengths = rng.integers(1, T + 1, size=B).astype(np.int32)
    lengths[0] = T  # one full-length sequence
    ids = rng.integers(2, args.vocab, size=(B, T)).astype(np.int32)
    ids[np.arange(T)[None, :] >= lengths[:, None]] = 0  # right padding with PAD = 0
    ids, lengths = jnp.asarray(ids), jnp.asarray(lengths)

    variables = model.init(jax.random.key(args.seed), ids[:1, :1])
    print(f"model: Embedding({args.vocab}, {args.embed}) → {args.cell.upper()}({args.hidden}, "
          f"layers={args.layers}, bidirectional={args.bidirectional}) → Dense({args.classes})")
    total = 0
    for path, leaf in jax.tree_util.tree_leaves_with_path(variables["params"]):
        name = "/".join(str(getattr(k, "key", k)) for k in path)
        total += leaf.size
        print(f"  {name:<40} {str(leaf.shape):<16} {leaf.size:>10,}")
    print(f"  {'total':<40} {'':<16} {total:>10,}")

    # The recurrent layer against a plain Python loop of the pure cell, on sequence 0.
    embed = model.apply(variables, ids[:1], method=model.embed)
    p = variables["params"]["recurrent"]["layer_0_forward"]
    step = {"lstm": cells.lstm_step, "gru": cells.gru_step, "rnn": cells.rnn_step}[args.cell]
    zeros = jnp.zeros((1, args.hidden), jnp.float32)
    carry = (zeros, zeros) if args.cell == "lstm" else zeros
    _, ys_scan = jax.jit(lambda p, x, c: scan_cell(step, p, x, c))(p, embed, carry)
    for t in range(T):
        carry, y = step(p, carry, embed[:, t])
    err = float(jnp.max(jnp.abs(ys_scan[0, -1] - y[0])))
    print(f"check: lax.scan vs Python loop of {args.cell}_step, max |Δh_T| = {err:.2e}")
    if err > 1e-4:
        print("error: the scanned layer disagrees with the Python loop", file=sys.stderr)
        return 1

    forward = jax.jit(model.apply)
    t0 = time.perf_counter()
    logits = forward(variables, ids, lengths).block_until_ready()
    compile_s = time.perf_counter() - t0
    runs = 5
    t0 = time.perf_counter()
    for _ in range(runs):
        logits = forward(variables, ids, lengths).block_until_ready()
    step_s = (time.perf_counter() - t0) / runs
    probs = jax.nn.softmax(logits)
    print(f"forward: batch {B} × time {T} on {jax.default_backend()}: first call {compile_s:.2f} s "
          f"(compile), then {step_s * 1e3:.1f} ms = {B * T / step_s:,.0f} tokens/s")
    shown = ", ".join("[" + " ".join(f"{v:.3f}" for v in row) + "]" for row in np.asarray(probs[:3]))
    print(f"class probabilities (untrained model) of the first 3 sequences: {shown}")
    return 0
