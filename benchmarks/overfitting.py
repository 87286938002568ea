"""Overfitting remedies (§9.2) and compression (§8.2), measured side by side.

    python benchmarks/overfitting.py [--fast] [--sst2] [--json overfitting.json]

Table 1, for no remedy and each remedy (``lstmjax.app.run.train`` with that one option): train,
validation and test accuracy and the train–test gap (train accuracy is on the original training
rows, not on augmented copies). Table 2, from the no-remedy model: one-shot global magnitude
pruning to 0/50/80/90/95 % sparsity (no fine-tuning), gradual pruning to 90 % during training,
and int8 quantisation: test accuracy, model bytes (msgpack; and gzip-compressed, which is where
zeros pay off: the dense arrays keep their size) and inference tokens/s (jitted forward pass over
the test split, best of 5 round-robin rounds; a pruned model runs dense kernels, so its speed does not change).

The built-in Rotten Tomatoes set always; SST-2 from ``../shared/data/sst2`` with ``--sst2``
(where present). ``--fast`` trains tiny models for one epoch on a 1,500-row subset: a check that
the script works, not a result. Markdown goes to stdout, everything to the ``--json`` file.
Timings on a shared machine are noisy; compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import gzip
import json
import pathlib
import sys
import tempfile
import time

import flax.serialization
import jax
import numpy as np

from lstmjax import compress as compression
from lstmjax.app.config import Config
from lstmjax.app.predictor import Predictor
from lstmjax.app.run import train
from lstmjax.data.batching import batches
from lstmjax.data.loading import builtin_data_dir
from lstmjax.training.loop import evaluate

SST2 = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"

REMEDIES = {  # name → Config changes (one remedy each)
    "none": {},
    "L2 1e-4 (coupled)": {"l2": 1e-4},
    "L1 1e-5": {"l1": 1e-5},
    "AdamW weight decay 1e-2": {"optimizer": "adamw", "weight_decay": 1e-2},
    "dropout emb 0.3 + out 0.5": {"embed_dropout": 0.3, "output_dropout": 0.5},
    "recurrent dropout 0.3": {"recurrent_dropout": 0.3},
    "EDA augmentation ×1": {"augment": 1},
    "early stopping (patience 2)": {"patience": 2},
    "ensemble of 3": {"ensemble": 3},
}
SPARSITIES = (0.0, 0.5, 0.8, 0.9, 0.95)


def subset_folder(source: pathlib.Path, rows: int, out: pathlib.Path, seed: int = 0) -> pathlib.Path:
    """A copy of a CSV dataset folder with ``rows`` training rows drawn at random (the files may be
    sorted by label), in their original order; the other splits whole."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "labels.txt").write_text((source / "labels.txt").read_text(encoding="utf-8"), encoding="utf-8")
    for split in ("train", "validation", "test"):
        with open(source / f"{split}.csv", encoding="utf-8", newline="") as f:
            table = list(csv.reader(f))
        if split == "train" and rows < len(table) - 1:
            chosen = np.sort(np.random.default_rng(seed).choice(len(table) - 1, rows, replace=False)) + 1
            table = [table[0]] + [table[i] for i in chosen]
        keep = table
        with open(out / f"{split}.csv", "w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows(keep)
    return out


def tokens_per_second(models: list[tuple], dataset, max_len: int, rounds: int = 5) -> list[float]:
    """Throughput of each ``(predict, params)`` over ``dataset`` (batch 256): the best of ``rounds``
    round-robin passes (every model once per round, so drifting machine load hits all alike)."""
    host = list(batches(dataset, 256, max_length=max_len))
    tokens = sum(int(b["lengths"].sum()) for b in host)
    for predict, params in models:  # compile every length bucket first
        jax.block_until_ready([predict(params, b["token_ids"], b["lengths"]) for b in host])
    best = [float("inf")] * len(models)
    for _ in range(rounds):
        for i, (predict, params) in enumerate(models):
            start = time.perf_counter()
            jax.block_until_ready([predict(params, b["token_ids"], b["lengths"]) for b in host])
            best[i] = min(best[i], time.perf_counter() - start)
    return [tokens / t for t in best]


def model_bytes(tree) -> tuple[int, int]:
    """Bytes of the msgpack file and of its gzip."""
    payload = flax.serialization.to_bytes(jax.device_get(tree))
    return len(payload), len(gzip.compress(payload, 6))


def remedies_table(base: Config, workdir: pathlib.Path, cache: str, log) -> tuple[list[dict], pathlib.Path]:
    rows, plain_dir = [], None
    for name, changes in REMEDIES.items():
        config = base.replace(**changes)
        run_dir = workdir / f"run-{len(rows)}"
        started = time.perf_counter()
        result = train(config, run_dir, cache_dir=cache, log=lambda *a: None)
        g = result.metrics["generalization"]
        row = {"remedy": name, "changes": changes, "train": g["train_accuracy"],
               "validation": g.get("validation_accuracy"), "test": g["test_accuracy"], "gap": g["train_test_gap"],
               "epochs_run": len(result.metrics["history"]["loss"]), "seconds": round(time.perf_counter() - started, 1)}
        if "ensemble" in result.metrics:
            row["member_test_mean"] = result.metrics["ensemble"]["member_accuracy_mean"]
        rows.append(row)
        log(f"  {name}: train {row['train']:.4f}  validation {row['validation']:.4f}  test {row['test']:.4f}  "
            f"gap {row['gap']:+.4f}  ({row['seconds']} s)")
        if name == "none":
            plain_dir = run_dir
    return rows, plain_dir


def compression_table(base: Config, plain_dir: pathlib.Path, workdir: pathlib.Path, cache: str, log) -> list[dict]:
    from lstmjax.data.batching import prepare
    from lstmjax.data.loading import load_dataset

    predictor = Predictor(plain_dir)
    files, state = predictor.files, predictor.state
    test = prepare(load_dataset(base.data, cache_dir=cache), files.tokenizer, vocab=files.vocab)["test"]
    model_apply = state.apply_fn
    predict = jax.jit(lambda params, ids, lengths: model_apply({"params": params}, ids, lengths))
    rows, timed = [], []

    def add(name, params, predict_fn, evaluated_state, sparsity=None):
        report = evaluate(evaluated_state, test, max_length=base.max_len, label_names=files.label_names)
        raw, packed = model_bytes(params)
        rows.append({"model": name, "sparsity": sparsity, "test": report["accuracy"], "bytes": raw,
                     "gzip_bytes": packed})
        timed.append((predict_fn, params))

    for s in SPARSITIES:
        masks = compression.magnitude_masks(state.params, s, scope="global")
        pruned = compression.apply_masks(state.params, masks)
        measured = compression.sparsity(pruned)["overall"]
        add(f"one-shot prune {round(100 * s)} %", pruned, predict, state.replace(params=pruned), measured)
    qparams = compression.quantize_int8(state.params)
    qpredict = compression.make_quantized_predict(state.apply_fn.__self__)  # dequantises inside the jit
    add("int8 quantised", qparams, qpredict, state.replace(params=compression.dequantize(qparams)))
    # gradual pruning during training to 90 %, then the same measurements
    run_dir = workdir / "run-gradual"
    train(base.replace(prune=0.9, prune_schedule="gradual"), run_dir, cache_dir=cache, log=lambda *a: None,
          progress=False)
    gradual = Predictor(run_dir).state
    add("gradual prune 90 %", gradual.params, predict, gradual, compression.sparsity(gradual.params)["overall"])
    for r, speed in zip(rows, tokens_per_second(timed, test, base.max_len)):
        r["tokens_per_s"] = speed
        log(f"  {r['model']}: test {r['test']:.4f}  bytes {r['bytes']:,}  gzip {r['gzip_bytes']:,}  "
            f"{speed:,.0f} tokens/s")
    return rows


def markdown(dataset: str, base: Config, remedies: list[dict], compressed: list[dict]) -> str:
    lines = [f"### {dataset}: overfitting remedies ({base.cell.upper()} {base.embed_dim}/{base.hidden}, "
             f"{base.epochs} epochs, batch {base.batch_size}, max_len {base.max_len})", "",
             "| remedy | train acc | validation acc | test acc | train − test gap | epochs run |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in remedies:
        extra = f" (members' mean test {r['member_test_mean']:.4f})" if "member_test_mean" in r else ""
        lines.append(f"| {r['remedy']}{extra} | {r['train']:.4f} | {r['validation']:.4f} | {r['test']:.4f} | "
                     f"{r['gap']:+.4f} | {r['epochs_run']} |")
    dense = compressed[0]
    lines += ["", f"### {dataset}: compression of the no-remedy model", "",
              "| model | measured sparsity | test acc | bytes (msgpack) | bytes (gzip) | tokens/s | speed vs dense |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for r in compressed:
        sp = "" if r["sparsity"] is None else f"{r['sparsity']:.3f}"
        lines.append(f"| {r['model']} | {sp} | {r['test']:.4f} | {r['bytes']:,} | {r['gzip_bytes']:,} | "
                     f"{r['tokens_per_s']:,.0f} | {r['tokens_per_s'] / dense['tokens_per_s']:.2f}× |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fast", action="store_true", help="tiny models, one epoch, 1,500 training rows (a check)")
    p.add_argument("--sst2", action="store_true", help=f"also SST-2 from {SST2} (skipped where absent)")
    p.add_argument("--sst2-only", action="store_true", help="only SST-2, not the built-in set")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: 8; --fast: 1)")
    p.add_argument("--hidden", type=int, default=None, help="embedding and hidden size (default: 64; --fast: 16)")
    p.add_argument("--max-len", type=int, default=None, help="tokens kept per text (default: 64; --fast: 32)")
    p.add_argument("--train-rows", type=int, default=None, help="use only the first N training rows")
    p.add_argument("--json", type=pathlib.Path, default=pathlib.Path("overfitting.json"), help="JSON output file")
    args = p.parse_args(argv)
    epochs = args.epochs or (1 if args.fast else 8)
    hidden = args.hidden or (16 if args.fast else 64)
    max_len = args.max_len or (32 if args.fast else 64)
    rows = args.train_rows or (1500 if args.fast else None)
    base = Config(epochs=epochs, hidden=hidden, embed_dim=hidden, max_len=max_len, batch_size=32,
                  vocab_size=2000 if args.fast else 20000, parallel="none", seed=0)

    datasets = [] if args.sst2_only else [("rotten_tomatoes (built-in)", builtin_data_dir())]
    if args.sst2 or args.sst2_only:
        if SST2.is_dir():
            datasets.append(("sst2", SST2))
        else:
            print(f"SST-2 not found at {SST2}; skipped", file=sys.stderr)

    def log(*a):
        print(*a, file=sys.stderr, flush=True)

    results = {"device": jax.devices()[0].device_kind, "jax": jax.__version__, "fast": args.fast,
               "config": dataclasses.asdict(base), "datasets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        cache = str(tmp / "cache")
        for name, folder in datasets:
            if rows is not None:
                folder = subset_folder(folder, rows, tmp / f"data-{len(results['datasets'])}")
            config = base.replace(data=str(folder))
            log(f"{name}: remedies")
            remedies, plain_dir = remedies_table(config, tmp / f"runs-{name[:4]}", cache, log)
            log(f"{name}: compression")
            compressed = compression_table(config, plain_dir, tmp / f"runs-{name[:4]}", cache, log)
            results["datasets"][name] = {"train_rows": rows, "remedies": remedies, "compression": compressed}
            print(markdown(name, config, remedies, compressed) + "\n", flush=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    log(f"wrote {args.json}")


if __name__ == "__main__":
    main()
