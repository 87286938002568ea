"""Data pipeline benchmark: tokenise+encode throughput (cold and cached), padding waste, prefetch.

    python benchmarks/data_pipeline.py [--data ../shared/data/sst2] [--batch-size 32]

Uses the SST-2 training split (67k sentences) from ``../shared/data/sst2`` when present, else the
built-in Rotten Tomatoes set. Every run uses a fresh cache folder, so "cold" is really cold.
"""

import argparse
import pathlib
import shutil
import tempfile
import time

import datasets as hf
import numpy as np

from lstmjax.data import batching as B
from lstmjax.data.loading import load_dataset

DEFAULT = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def padding_waste(batches):
    """Padded tokens / real tokens over the real rows of ``batches``."""
    padded = real = 0
    for b in batches:
        padded += int(b["mask"].sum()) * b["token_ids"].shape[1]
        real += int(b["lengths"].sum())
    return padded / real


def consumer_wait(source, step_s, n):
    """Seconds the training loop spends waiting for batches while each 'step' takes step_s."""
    waited = 0.0
    it = iter(source)
    for _ in range(n):
        t = time.perf_counter()
        try:
            next(it)
        except StopIteration:
            break
        waited += time.perf_counter() - t
        time.sleep(step_s)  # stands in for an asynchronously dispatched device step
    return waited


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=pathlib.Path, default=DEFAULT)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-proc", type=int, default=None)
    args = p.parse_args()
    hf.disable_progress_bars()

    cache = pathlib.Path(tempfile.mkdtemp(prefix="lstmjax-bench-"))
    try:
        if args.data.is_dir():
            source, name = args.data, f"{args.data.name} train"
        else:
            print(f"{args.data} not found: using the built-in Rotten Tomatoes set instead of SST-2")
            source, name = "builtin", "rotten_tomatoes (built-in) train"
        data = load_dataset(source, splits=["train"], cache_dir=cache)
        n = data["train"].num_rows

        prepared, cold = timed(lambda: B.prepare(data, "english", num_proc=args.num_proc))
        ntok = int(sum(len(t) for t in prepared["train"]["token_ids"][:]))
        again = load_dataset(source, splits=["train"], cache_dir=cache)
        _, warm = timed(lambda: B.prepare(again, "english", num_proc=args.num_proc))
        print(f"data: {name}, {n} texts, {ntok} tokens, vocabulary {len(prepared.vocab)}")
        print(f"tokenise+encode cold:       {cold:7.2f} s  {ntok / cold:12,.0f} tokens/s")
        print(f"tokenise+encode from cache: {warm:7.2f} s  {ntok / warm:12,.0f} tokens/s")

        train = prepared["train"]
        bs = args.batch_size
        rows = [
            ("no bucketing (one shape: max length)", dict(length_buckets=None, sort_window=None, fixed=True)),
            ("pad to power-of-two buckets, unsorted", dict(sort_window=None)),
            ("buckets + sort within 64-batch windows", dict(sort_window=64)),
        ]
        lengths = np.array([len(t) for t in train["token_ids"][:]])
        for label, kw in rows:
            fixed = kw.pop("fixed", False)
            if fixed:
                kw["length_buckets"] = [int(lengths.max())]
            out, secs = timed(lambda kw=kw: list(B.batches(train, bs, shuffle=True, seed=0, **kw)))
            shapes = len({b["token_ids"].shape for b in out})
            print(f"padding waste, {label:40s}: {padding_waste(out):5.2f} padded/real tokens, "
                  f"{shapes} shapes, {len(out) / secs:8,.0f} batches/s")

        step = 0.002
        nb = 400
        make = lambda: B.batches(train, bs, shuffle=True, seed=1, sort_window=64)  # noqa: E731
        t_batch = timed(lambda: [b for _, b in zip(range(nb), make(), strict=False)])[1] / nb
        plain = consumer_wait(make(), step, nb)
        pre = consumer_wait(B.prefetch(make(), 4), step, nb)
        print(f"prefetch: building one batch takes {t_batch * 1e3:.2f} ms; with a {step * 1e3:.0f} ms step, "
              f"the loop waits {plain * 1e3:7.1f} ms over {nb} steps without prefetch, {pre * 1e3:7.1f} ms with")
    finally:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
