"""What pretraining buys (§6): test accuracy against the number of labelled examples, from scratch vs
pretrained-then-fine-tuned, for the LSTM and the Transformer.

    python benchmarks/pretraining.py [--quick] [--plot pretraining.png] [--json pretraining.json]

For each model: one self-supervised pretraining run (:func:`lstmjax.app.pretrain.pretrain`: the LSTM
as a next-token language model, the Transformer on BERT's masked tokens) on the texts of SST-2's
training split (67k sentences from ``../shared/data/sst2``; the built-in set's own training texts
where that is absent), labels ignored, for a time budget. Then, for each number of labelled
examples (a random subset of the built-in Rotten Tomatoes training split, the same subset for
both arms) and each seed, two classifiers of the same shape on the same vocabulary (the
pretraining run's): one from a random initialisation, one whose encoder is the pretrained one
(:func:`lstmjax.training.pretrain.init_encoder`) with a new head. Each trains with Adam for at
least ``--min-steps`` steps, keeps its best epoch on a 300-row validation subset, and is scored on
the whole test split (1,066 reviews). The table gives the mean ± s.d. over seeds; the plot the
learning curves.

``--quick`` trains tiny models for a few steps on two sizes, one seed: a check that the script
works, not a result. Numbers on a shared 2-core machine: the absolute accuracies depend on the
budget; compare the two arms within one run.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import tempfile
import time

import jax
import numpy as np

from lstmjax.app.config import Config
from lstmjax.app.pretrain import encoder_model, pretrain
from lstmjax.app.pretrain_config import PretrainConfig
from lstmjax.data import load_dataset, prepare
from lstmjax.training import (
    EarlyStopping,
    create_train_state,
    evaluate,
    fit,
    make_optimizer,
)
from lstmjax.training.pretrain import init_encoder

SST2 = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"


def arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny models, few steps, two sizes, one seed (a smoke run)")
    p.add_argument("--models", default="lstm,transformer")
    p.add_argument("--sizes", default="100,300,1000,all", help="labelled training examples ('all': the whole split)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--pretrain-data", default=str(SST2) if SST2.is_dir() else "builtin")
    p.add_argument("--pretrain-seconds", type=float, default=300.0, help="pretraining budget per model")
    p.add_argument("--dim", type=int, default=64, help="embedding and hidden size (the Transformer's width)")
    p.add_argument("--max-len", type=int, default=48)
    p.add_argument("--min-steps", type=int, default=150, help="fine-tuning steps at least (more epochs for small sets)")
    p.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs at least")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--plot", default="pretraining.png")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if args.quick:
        args.sizes, args.seeds, args.dim, args.max_len = "100,300", 1, 16, 32
        args.pretrain_seconds, args.min_steps, args.epochs = 10.0, 10, 1
    return args


def pretrain_config(args, model: str) -> PretrainConfig:
    return PretrainConfig(model=model, data=args.pretrain_data, max_len=args.max_len, vocab_size=20000,
                          embed_dim=args.dim, hidden=args.dim, layers=1 if model != "transformer" else 2,
                          heads=4, ff_size=2 * args.dim, batch_size=64, lr=1e-3, epochs=100,
                          time_limit=None if args.quick else args.pretrain_seconds, log_every=100,
                          steps=20 if args.quick else None)


def subset(split, n: int | None, seed: int):
    if n is None or n >= split.num_rows:
        return split
    return split.select(np.sort(np.random.default_rng(seed).choice(split.num_rows, n, replace=False)).tolist())


def fine_tune(args, pre, data, n: int | None, seed: int, pretrained: bool) -> float:
    """Test accuracy of one classifier trained on ``n`` labelled examples (``None``: all)."""
    train = subset(data["train"], n, seed)
    model = encoder_model(pre.config, len(pre.vocab), len(data.label_names), fine_tune=Config(pooling="mean"))
    state = create_train_state(model, jax.random.key(seed), make_optimizer("adam", 1e-3))
    if pretrained:
        state = state.replace(params=init_encoder(state.params, pre.params))
    epochs = max(args.epochs, -(-args.min_steps * args.batch_size // train.num_rows))
    best = EarlyStopping(None, restore_best=True)
    state, _ = fit(state, train, epochs=epochs, batch_size=args.batch_size, seed=seed, max_length=args.max_len,
                   validation_data=subset(data["validation"], 300, 0), callbacks=[best])
    return evaluate(state, data["test"], max_length=args.max_len, label_names=data.label_names)["accuracy"]


def run_model(args, model: str, folder: pathlib.Path) -> dict:
    started = time.perf_counter()
    pre = pretrain(pretrain_config(args, model), folder / model, log=lambda line: print(f"  [{model}] {line}"))
    history = json.loads((folder / model / "metrics.json").read_text())["history"]
    print(f"{model}: pretrained {pre.step} steps in {time.perf_counter() - started:.0f} s, "
          f"final {pre.config.objective} loss {history[-1]['loss']:.3f}", flush=True)
    data = prepare(load_dataset("builtin"), pre.tokenizer, vocab=pre.vocab)  # the pretraining run's ids
    sizes = [None if s == "all" else int(s) for s in args.sizes.split(",")]
    results = {"pretrain_steps": pre.step, "pretrain_history": history, "rows": []}
    for n in sizes:
        for arm in ("scratch", "pretrained"):
            started = time.perf_counter()
            accs = [fine_tune(args, pre, data, n, seed, arm == "pretrained") for seed in range(args.seeds)]
            row = {"n": n or data["train"].num_rows, "arm": arm, "accuracies": accs}
            results["rows"].append(row)
            print(f"  {model} n={row['n']} {arm}: " + ", ".join(f"{a:.4f}" for a in accs)
                  + f" ({time.perf_counter() - started:.0f} s)", flush=True)
    return results


def table(results: dict) -> str:
    lines = ["| model | labelled examples | from scratch | pretrained, fine-tuned | gain |", "|---|---:|---:|---:|---:|"]
    for model, r in results.items():
        by = {(row["n"], row["arm"]): np.array(row["accuracies"]) for row in r["rows"]}
        for n in sorted({n for n, _ in by}):
            s, p = by[(n, "scratch")], by[(n, "pretrained")]
            lines.append(f"| {model} | {n} | {s.mean():.4f} ± {s.std(ddof=1) if len(s) > 1 else 0:.4f} | "
                         f"{p.mean():.4f} ± {p.std(ddof=1) if len(p) > 1 else 0:.4f} | {p.mean() - s.mean():+.4f} |")
    return "\n".join(lines)


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for model, r in results.items():
        for arm, style in (("scratch", "--"), ("pretrained", "-")):
            rows = sorted((row for row in r["rows"] if row["arm"] == arm), key=lambda row: row["n"])
            ns = [row["n"] for row in rows]
            means = np.array([np.mean(row["accuracies"]) for row in rows])
            sds = np.array([np.std(row["accuracies"], ddof=1) if len(row["accuracies"]) > 1 else 0.0 for row in rows])
            ax.errorbar(ns, means, yerr=sds, linestyle=style, marker="o", capsize=3, label=f"{model}, {arm}")
    ax.set_xscale("log")
    ax.set_xlabel("labelled training examples")
    ax.set_ylabel("test accuracy (Rotten Tomatoes)")
    ax.set_title("Pretraining then fine-tuning vs from scratch")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    import datasets

    datasets.disable_progress_bars()
    args = arguments()
    budget = "20 steps" if args.quick else f"{args.pretrain_seconds:.0f} s"
    print(f"pretraining on {args.pretrain_data} ({budget} per model); fine-tuning on the "
          f"built-in set, sizes {args.sizes}, {args.seeds} seed(s), width {args.dim}, max_len {args.max_len}",
          flush=True)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for model in args.models.split(","):
            results[model] = run_model(args, model, pathlib.Path(folder))
    print()
    print(table(results))
    plot(results, args.plot)
    print(f"\nplot: {args.plot}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
