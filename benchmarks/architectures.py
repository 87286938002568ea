"""The document's three architectures (§2.2) side by side: LSTM, GRU, text CNN and Transformer on the same data.

    python benchmarks/architectures.py            # full: 3 seeds × 4 models × 2 data sets, ~1 h on 2 quiet cores
    python benchmarks/architectures.py --quick    # 1 seed, 1 epoch, 1,500 training rows: a check, not a result

Every model trains with ``lstmjax.app.run.train`` (the ``lstmjax train`` command's code) under one
budget: the same data, vocabulary, ``max_len``, embedding size, epochs, batch size, optimizer and
seeds; only ``--model`` and each model's own options differ (:data:`MODELS`). Printed as a
Markdown table, per data set and model:

* test accuracy, mean ± s.d. over the seeds (sample s.d.; 0 with one seed);
* parameters;
* training time per epoch: the median time between consecutive epochs' log lines (training and
  the validation pass); with a single epoch, the first one, compile included (marked ``*``);
* inference tokens/s on this CPU: the jitted forward pass over the test split at batch 256, every
  length bucket compiled first, best of 3 rounds (first seed's model).

Data: the built-in English set (Rotten Tomatoes), and a Chinese set (``waimai_10k``, takeaway
reviews, ``jieba`` words) from ``../shared/data`` beside the checkout where present, else skipped
with the reason. Timings on a shared machine are noisy: compare models within one run. Everything
goes to ``--json`` too.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import pathlib
import statistics
import sys
import tempfile
import time

import jax
import numpy as np

from lstmjax.app.config import Config
from lstmjax.app.predictor import Predictor
from lstmjax.app.run import train
from lstmjax.data.batching import batches, prepare
from lstmjax.data.loading import builtin_data_dir, load_dataset

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
CHINESE = SHARED / "waimai_10k"

MODELS = {  # name → Config changes; the rest of the budget is common (see main)
    "LSTM": {"model": "lstm"},
    "GRU": {"model": "gru"},
    "TextCNN": {"model": "cnn", "cnn_widths": (3, 4, 5), "cnn_filters": 64, "output_dropout": 0.5},
    "Transformer": {"model": "transformer", "layers": 2, "heads": 4, "ff_size": 128, "dropout": 0.1},
}


def subset_folder(source: pathlib.Path, rows: int, out: pathlib.Path, seed: int = 0) -> pathlib.Path:
    """A copy of a CSV data folder with ``rows`` training rows drawn at random; the other splits whole."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "labels.txt").write_text((source / "labels.txt").read_text(encoding="utf-8"), encoding="utf-8")
    for split in ("train", "validation", "test"):
        with open(source / f"{split}.csv", encoding="utf-8", newline="") as f:
            table = list(csv.reader(f))
        if split == "train" and rows < len(table) - 1:
            chosen = np.sort(np.random.default_rng(seed).choice(len(table) - 1, rows, replace=False)) + 1
            table = [table[0]] + [table[i] for i in chosen]
        with open(out / f"{split}.csv", "w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows(table)
    return out


def timed_train(config: Config, run_dir: pathlib.Path, cache: str) -> tuple[dict, float, bool]:
    """Train one run: its metrics, the seconds per epoch, and whether that time includes compilation."""
    stamps: dict[str, float] = {}

    def log(*parts):
        line = " ".join(str(p) for p in parts)
        if line.startswith("model:"):
            stamps["start"] = time.perf_counter()
        elif line.startswith("epoch "):
            stamps[line.split(":", 1)[0]] = time.perf_counter()

    result = train(config, run_dir, cache_dir=cache, log=log)
    epochs = [stamps[k] for k in stamps if k.startswith("epoch ")]
    if len(epochs) >= 2:
        return result.metrics, statistics.median(np.diff(epochs).tolist()), False
    return result.metrics, epochs[0] - stamps.get("start", epochs[0]), True


def tokens_per_second(run_dir: pathlib.Path, data: str, cache: str, rounds: int = 3) -> float:
    """Test-split tokens per second of the run's jitted forward pass (batch 256), best of ``rounds``."""
    predictor = Predictor(run_dir)
    files, state = predictor.files, predictor.state
    test = prepare(load_dataset(data, cache_dir=cache), files.tokenizer, vocab=files.vocab)["test"]
    apply = state.apply_fn
    predict = jax.jit(lambda params, ids, lengths: apply({"params": params}, ids, lengths))
    host = list(batches(test, 256, max_length=files.config.max_len))
    tokens = sum(int(b["lengths"].sum()) for b in host)
    jax.block_until_ready([predict(state.params, b["token_ids"], b["lengths"]) for b in host])  # compile
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        jax.block_until_ready([predict(state.params, b["token_ids"], b["lengths"]) for b in host])
        best = min(best, time.perf_counter() - start)
    return tokens / best


def measure(name: str, base: Config, seeds: list[int], workdir: pathlib.Path, cache: str, log) -> dict:
    """One model on one data set: every seed's test accuracy, and the first seed's size and speeds."""
    accuracies, epoch_seconds, with_compile, parameters, speed = [], [], False, None, None
    for seed in seeds:
        config = base.replace(**MODELS[name], seed=seed)
        run_dir = workdir / f"{name}-{seed}"
        metrics, seconds, with_compile = timed_train(config, run_dir, cache)
        accuracies.append(metrics["accuracy"])
        epoch_seconds.append(seconds)
        if parameters is None:
            parameters = metrics["parameters"]
            speed = tokens_per_second(run_dir, config.data, cache)
        log(f"  {name} seed {seed}: test accuracy {metrics['accuracy']:.4f}, {seconds:.1f} s/epoch")
    return {"model": name, "accuracy": accuracies, "mean": statistics.fmean(accuracies),
            "sd": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0, "parameters": parameters,
            "epoch_seconds": statistics.median(epoch_seconds), "compile_included": with_compile,
            "tokens_per_second": speed}


def table(rows: list[dict], seeds: int) -> str:
    head = f"| model | test accuracy (mean ± s.d., {seeds} seed{'s' if seeds > 1 else ''}) | parameters | "
    lines = [head + "s / epoch | inference tokens/s |", "|---|---|---|---|---|"]
    for r in rows:
        star = "*" if r["compile_included"] else ""
        lines.append(f"| {r['model']} | {r['mean']:.4f} ± {r['sd']:.4f} | {r['parameters']:,} | "
                     f"{r['epoch_seconds']:.1f}{star} | {r['tokens_per_second']:,.0f} |")
    return "\n".join(lines)


def _data_sets(skip_chinese: bool, log) -> list[tuple[str, pathlib.Path, str]]:
    sets = [("English: rotten_tomatoes (built-in)", builtin_data_dir(), "english")]
    if skip_chinese:
        log("Chinese set: skipped (--no-chinese)")
    elif (CHINESE / "train.csv").is_file():
        sets.append(("Chinese: waimai_10k", CHINESE, "jieba"))
    else:
        log(f"Chinese set: skipped, {CHINESE} not found (it comes with the course's shared data folder)")
    return sets


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 seed, 1 epoch, tiny models, 1,500 training rows: a check")
    p.add_argument("--seeds", type=int, default=None, help="seeds per model (default 3; --quick: 1)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default 5; --quick: 1)")
    p.add_argument("--no-chinese", action="store_true", help="the English set only")
    p.add_argument("--json", type=pathlib.Path, default=pathlib.Path("architectures.json"), help="JSON output file")
    args = p.parse_args(argv)
    seeds = list(range(args.seeds or (1 if args.quick else 3)))
    size = 16 if args.quick else 64
    base = Config(epochs=args.epochs or (1 if args.quick else 5), embed_dim=size, hidden=size,
                  max_len=32 if args.quick else 64, vocab_size=2000 if args.quick else 20000, batch_size=32,
                  parallel="none")

    def log(*a):
        print(*a, file=sys.stderr, flush=True)

    results = {"device": jax.devices()[0].device_kind, "jax": jax.__version__, "quick": args.quick,
               "config": dataclasses.asdict(base), "models": MODELS, "datasets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        cache = str(tmp / "cache")
        for label, folder, tokenizer in _data_sets(args.no_chinese, log):
            if args.quick:
                folder = subset_folder(folder, 1500, tmp / f"data-{len(results['datasets'])}")
            config = base.replace(data=str(folder), tokenizer=tokenizer)
            log(f"{label}:")
            rows = [measure(name, config, seeds, tmp / f"runs-{len(results['datasets'])}", cache, log)
                    for name in MODELS]
            results["datasets"][label] = rows
            print(f"\n### {label}\n\n{table(rows, len(seeds))}")
    if args.quick or any(r["compile_included"] for rows in results["datasets"].values() for r in rows):
        print("\n\\* one epoch only: its time includes compilation.")
    args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
