"""The ``lstmjax`` command (also ``python -m lstmjax``).

Subcommands:

* ``lstmjax demo``: build the document's classifier (Embedding → LSTM → Dense), show its
  parameters, run it on a batch of variable-length sequences, check the layer against a plain
  Python loop of the pure cell, and time the forward pass.

User errors (bad arguments) exit with a message and status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

__all__ = ["main"]


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lstmjax", description="A pure-functional LSTM in JAX.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="build the document's model, check it, and time a forward pass",
                          description="Build Embedding → recurrent stack → Dense, check the recurrent layer "
                                      "against a Python loop of the pure cell, and time a forward pass.")
    demo.add_argument("--cell", choices=("lstm", "gru", "rnn"), default="lstm", help="recurrent cell (default: lstm)")
    demo.add_argument("--layers", type=_positive, default=1, help="stacked recurrent layers (default: 1)")
    demo.add_argument("--bidirectional", action="store_true", help="bidirectional recurrent layers")
    demo.add_argument("--vocab", type=_positive, default=20000, help="vocabulary size (default: 20000)")
    demo.add_argument("--embed", type=_positive, default=128, help="embedding size (default: 128)")
    demo.add_argument("--hidden", type=_positive, default=128, help="hidden size (default: 128)")
    demo.add_argument("--classes", type=_positive, default=2, help="number of classes (default: 2)")
    demo.add_argument("--batch-size", type=_positive, default=32, help="batch size (default: 32)")
    demo.add_argument("--max-len", type=_positive, default=200, help="padded sequence length (default: 200)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    return parser


def _demo(args: argparse.Namespace) -> int:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from lstmjax import TextClassifier, cells
    from lstmjax.layers import scan_cell

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
    print(f"forward: batch {B} × time {T} on {jax.devices()[0].platform}: first call {compile_s:.2f} s "
          f"(compile), then {step_s * 1e3:.1f} ms = {B * T / step_s:,.0f} tokens/s")
    shown = ", ".join("[" + " ".join(f"{v:.3f}" for v in row) + "]" for row in np.asarray(probs[:3]))
    print(f"class probabilities (untrained model) of the first 3 sequences: {shown}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lstmjax`` command; returns the exit status.

    Example:
      >>> main(["demo", "--vocab", "50", "--embed", "8", "--hidden", "8", "--batch-size", "2", "--max-len", "5"])
      model: Embedding(50, 8) → LSTM(8, layers=1, bidirectional=False) → Dense(2)
      ...
      0
    """
    args = _parser().parse_args(argv)
    if args.command == "demo":
        return _demo(args)
    raise AssertionError(args.command)  # pragma: no cover - argparse restricts the choices


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
