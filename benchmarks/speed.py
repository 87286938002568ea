"""Training and inference speed of the document's LSTM classifier: lstmjax against its peers.

    python benchmarks/speed.py            # full run: ~6 min on a quiet 2-core CPU (TF-Keras adds ~1 min)
    python benchmarks/speed.py --quick    # 2 short rounds: ~2-3 min, for development

The model is the document's (§4.3): Embedding(20000, 128) → LSTM(128) → Dense(2), float32, on
full-length random sequences of T = 200 tokens, in four configurations: a full training step
(forward, backward, Adam) and inference (forward only), each at batch 32 and 256.

Implementations, each in its own worker process with the same environment:

* ``lstmjax``: :class:`lstmjax.TextClassifier` with its defaults, trained with the library's own
  jitted step (``DataParallel("none").train_step()``: ``train_step`` with the state donated).
* ``lstmjax-bf16``: the same with ``matmul_dtype=bfloat16`` (opt-in, lower precision; reported,
  not counted in the ratio).
* ``lstmjax-split``: the default model on ``D`` simulated host devices (``D`` = CPU cores), the
  batch split over them (``DataParallel("mesh")``); on a CPU each XLA device runs its small
  matrix products on one core, so a split can use more cores. CPU only.
* ``torch``: ``nn.Embedding`` + ``nn.LSTM`` + ``nn.Linear`` with ``torch.optim.Adam(fused=True)``
  where supported (else ``foreach=True``), ``torch.set_num_threads(cores)``; cuDNN on a GPU.
* ``flax``: ``nn.RNN(nn.OptimizedLSTMCell)`` with an ``optax.adam`` step under ``jax.jit``.
* ``keras-jax``: Keras 3 ``Sequential([Embedding, LSTM, Dense])`` on the JAX backend, ``jit_compile=True``.
* ``tf-keras``: the same Keras model on the TensorFlow backend, run with a Python that has
  TensorFlow (``--tf-python``, default: this one if it imports ``tensorflow``, else
  ``.venv-tf/bin/python`` beside this checkout); skipped with a message where there is none.

Before any timing, every implementation must bring its loss down on a small separable task
(tokens of class 0 from one id range, class 1 from another): a broken model is not timed.

Rounds are interleaved (A B C ... A B C ...): a busy machine slows every implementation
alike, and each row reports the median over rounds with its min–max. A round of one
configuration runs steps, each waited for, until ``--min-time`` seconds have passed.

Also printed: the machine's float32 GEMM rate (a 2048³ matrix product, best of JAX and PyTorch,
measured in the same rounds) and each row's fraction of it, counting 2·4H·(E+H) + 2·H·C FLOP
per token for the forward pass (0.26 MFLOP here) and three times that for a training step
(0.79 MFLOP; backward ≈ 2 × forward); the first call's time (trace + compile + one step); and
finally ``min ratio vs best peer: X.XX``: lstmjax's (default settings) tokens/s over the fastest
peer's, in the configuration where that ratio is worst.

Process settings are the same for all workers: ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` unless
the variable is already set or ``--no-hugetlb`` is given (transparent huge pages for glibc
malloc: fewer page faults for the large temporaries of a training step; measured 1.3–1.8× on
this kind of machine for both PyTorch and JAX), and all cores for every framework.

GPU: with ``--platform gpu`` the JAX workers use the GPU and PyTorch uses CUDA (cuDNN's LSTM).
GPU performance of lstmjax has not been measured (no GPU was available where this was written);
there is no fused GPU kernel.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = [("train", 32), ("train", 256), ("infer", 32), ("infer", 256)]
DEFAULT_IMPLS = ["lstmjax", "lstmjax-bf16", "lstmjax-split", "torch", "flax", "keras-jax", "tf-keras"]
PEERS = ("torch", "flax", "keras-jax", "tf-keras")


def flops_per_token(embed: int, hidden: int, classes: int) -> tuple[float, float]:
    """(training, inference) FLOP per token: forward = 2·4H·(E+H) + 2·H·C, training ≈ 3 × forward."""
    forward = 2 * 4 * hidden * (embed + hidden) + 2 * hidden * classes
    return 3.0 * forward, float(forward)


# =============================================================================================
# Workers: one process per implementation; JSON lines on stdin/stdout
# =============================================================================================


def _separable_task(rng, vocab: int, batch: int = 32, seq_len: int = 20):
    """Class 0 draws its tokens from [2, 100), class 1 from [100, 200): trivially separable."""
    import numpy as np

    labels = rng.integers(0, 2, batch).astype(np.int32)
    low = np.where(labels == 0, 2, 100)[:, None]
    ids = (low + rng.integers(0, 98, (batch, seq_len))).astype(np.int32)
    return ids, labels


class _Impl:
    """An implementation: ``train(config) -> step()`` and ``infer(config) -> step()``, each step blocking."""

    name = "?"

    def __init__(self, args):
        self.args = args

    def sanity(self) -> tuple[float, float]:
        """Loss before and after 40 Adam steps (lr 1e-2) on the separable task."""
        import numpy as np

        ids, labels = _separable_task(np.random.default_rng(0), self.args.vocab)
        run = self._trainer(1e-2, ids, labels)
        losses = [run() for _ in range(40)]
        return losses[0], losses[-1]

    ids_dtype = "int32"  # token ids as this implementation's embedding takes them

    def _trainer(self, lr: float, ids, labels):
        """``run() -> loss``: one blocking train step on this batch."""
        raise NotImplementedError

    def _inferrer(self, ids):
        """``run()``: one blocking forward pass over ``ids``."""
        raise NotImplementedError

    def make(self, kind: str, batch: int):
        """The timed step for one configuration, on the same random batch for every implementation."""
        import numpy as np

        rng = np.random.default_rng(1)
        ids = rng.integers(2, self.args.vocab, (batch, self.args.seq_len)).astype(self.ids_dtype)
        labels = rng.integers(0, self.args.classes, batch).astype(self.ids_dtype)
        return self._trainer(1e-3, ids, labels) if kind == "train" else self._inferrer(ids)


class _LstmjaxImpl(_Impl):
    def __init__(self, args, variant: str):
        super().__init__(args)
        self.name = variant
        import jax

        if variant == "lstmjax-split":
            jax.config.update("jax_num_cpu_devices", os.cpu_count() or 1)
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp
        self.kwargs = {"matmul_dtype": jnp.bfloat16} if variant == "lstmjax-bf16" else {}

    def _parallel(self):
        from lstmjax.parallel import DataParallel

        if self.name == "lstmjax-split":
            return DataParallel.create("mesh", self.jax.device_count())
        return DataParallel.create("none")

    def _model(self):
        from lstmjax import TextClassifier

        a = self.args
        return TextClassifier(a.vocab, a.classes, embed_dim=a.embed, hidden_size=a.hidden, **self.kwargs)

    def _trainer(self, lr: float, ids, labels):
        import numpy as np

        from lstmjax.training.state import create_train_state, make_optimizer

        dp = self._parallel()
        state = dp.put_state(create_train_state(self._model(), self.jax.random.key(0), make_optimizer("adam", lr)))
        batch = dp.put_batch({"token_ids": ids, "lengths": np.full(ids.shape[0], ids.shape[1], np.int32),
                              "labels": labels})
        step = dp.train_step()
        holder = {"state": state}

        def run():
            holder["state"], m = step(holder["state"], batch)
            return float(dp.get_metrics(m)["loss_sum"]) / ids.shape[0]

        return run

    def _inferrer(self, ids):
        import numpy as np

        from lstmjax.training.state import create_train_state, make_optimizer

        jax = self.jax
        model = self._model()
        params = create_train_state(model, jax.random.key(0), make_optimizer()).params
        dp = self._parallel()
        lengths = np.full(ids.shape[0], ids.shape[1], np.int32)
        if dp.mode == "mesh":
            from jax.sharding import NamedSharding, PartitionSpec

            from lstmjax.parallel import shard_batch_to_mesh

            sharded = shard_batch_to_mesh({"ids": ids, "lengths": lengths}, dp.mesh)
            ids_d, lengths_d = sharded["ids"], sharded["lengths"]
            params = jax.device_put(params, NamedSharding(dp.mesh, PartitionSpec()))
        else:
            ids_d, lengths_d = jax.device_put(ids), jax.device_put(lengths)
        forward = jax.jit(lambda p, i, n: model.apply({"params": p}, i, n))
        return lambda: forward(params, ids_d, lengths_d).block_until_ready()


class _TorchImpl(_Impl):
    name = "torch"
    ids_dtype = "int64"

    def __init__(self, args):
        super().__init__(args)
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        self.torch = torch
        self.device = torch.device("cuda" if args.platform == "gpu" else "cpu")
        self.adam_mode = None

    def _model(self):
        torch, a = self.torch, self.args

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = torch.nn.Embedding(a.vocab, a.embed)
                self.lstm = torch.nn.LSTM(a.embed, a.hidden, batch_first=True)
                self.fc = torch.nn.Linear(a.hidden, a.classes)

            def forward(self, ids):
                _, (h, _) = self.lstm(self.emb(ids))
                return self.fc(h[-1])

        torch.manual_seed(0)
        return Net().to(self.device)

    def _optimizer(self, model, lr):
        torch = self.torch
        try:
            opt = torch.optim.Adam(model.parameters(), lr=lr, fused=True)
            self.adam_mode = "fused"
        except (RuntimeError, ValueError, TypeError):
            opt = torch.optim.Adam(model.parameters(), lr=lr, foreach=True)
            self.adam_mode = "foreach"
        return opt

    def _sync(self):
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()

    def _trainer(self, lr, ids, labels):
        torch = self.torch
        model = self._model()
        opt = self._optimizer(model, lr)
        x = torch.as_tensor(ids, dtype=torch.long, device=self.device)
        y = torch.as_tensor(labels, dtype=torch.long, device=self.device)
        loss_fn = torch.nn.CrossEntropyLoss()

        def run():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            self._sync()
            return float(loss.detach())

        return run

    def _inferrer(self, ids):
        torch = self.torch
        model = self._model().eval()
        x = torch.as_tensor(ids, device=self.device)

        def run():
            with torch.inference_mode():
                model(x)
            self._sync()

        return run


class _FlaxImpl(_Impl):
    name = "flax"

    def _model(self):
        import flax.linen as nn

        a = self.args

        class Net(nn.Module):
            @nn.compact
            def __call__(self, ids):
                x = nn.Embed(a.vocab, a.embed)(ids)
                y = nn.RNN(nn.OptimizedLSTMCell(a.hidden))(x)  # (B, T, H)
                return nn.Dense(a.classes)(y[:, -1])

        return Net()

    def _trainer(self, lr, ids, labels):
        import jax
        import optax

        model = self._model()
        params = model.init(jax.random.key(0), ids[:1])
        tx = optax.adam(lr)
        state = (params, tx.init(params))

        @jax.jit
        def loss_fn(p, x, y):
            return optax.softmax_cross_entropy_with_integer_labels(model.apply(p, x), y).mean()

        def step(state, x, y):
            params, opt = state
            loss, g = jax.value_and_grad(loss_fn)(params, x, y)
            updates, opt = tx.update(g, opt, params)
            return (optax.apply_updates(params, updates), opt), loss

        step = jax.jit(step, donate_argnums=0)
        x, y = jax.device_put(ids), jax.device_put(labels)
        holder = {"state": state}

        def run():
            holder["state"], loss = step(holder["state"], x, y)
            return float(loss)

        return run

    def _inferrer(self, ids):
        import jax

        model = self._model()
        params = model.init(jax.random.key(0), ids[:1])
        forward = jax.jit(model.apply)
        x = jax.device_put(ids)
        return lambda: forward(params, x).block_until_ready()


class _KerasImpl(_Impl):
    def __init__(self, args, name):
        super().__init__(args)
        self.name = name
        import keras

        self.keras = keras

    def _model(self, lr):
        keras, a = self.keras, self.args
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((None,), dtype="int32"), keras.layers.Embedding(a.vocab, a.embed),
                                  keras.layers.LSTM(a.hidden), keras.layers.Dense(a.classes)])
        model.compile(optimizer=keras.optimizers.Adam(lr),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True)
        return model

    def _trainer(self, lr, ids, labels):
        import numpy as np

        model = self._model(lr)
        return lambda: float(np.asarray(model.train_on_batch(ids, labels)).ravel()[0])  # host numbers: blocks

    def _inferrer(self, ids):
        import numpy as np

        model = self._model(1e-3)
        return lambda: np.asarray(model.predict_on_batch(ids))


def _worker(name: str, args) -> int:
    """Serve one implementation: setup, then time configurations on request."""
    out = sys.stdout
    sys.stdout = sys.stderr  # library prints must not corrupt the protocol

    def reply(obj):
        out.write(json.dumps(obj) + "\n")
        out.flush()

    try:
        if name.startswith("lstmjax"):
            impl = _LstmjaxImpl(args, name)
        elif name == "torch":
            impl = _TorchImpl(args)
        elif name == "flax":
            impl = _FlaxImpl(args)
        else:
            impl = _KerasImpl(args, name)
        first, last = impl.sanity()
        info = {"loss_first": first, "loss_last": last, "versions": _versions(name)}
        if getattr(impl, "adam_mode", None):
            info["adam"] = impl.adam_mode
        if not last < 0.5 * first:
            reply({"error": f"loss did not fall on the separable task ({first:.3f} -> {last:.3f})", **info})
            return 1
        runners, first_call = {}, {}
        for kind, batch in CONFIGS:
            key = f"{kind}{batch}"
            runners[key] = impl.make(kind, batch)
            start = time.perf_counter()
            runners[key]()  # trace + compile + one step
            first_call[key] = time.perf_counter() - start
            runners[key]()  # warm-up
        reply({"ok": True, "first_call_s": first_call, **info})
    except Exception as e:  # reported by the coordinator, which goes on without this worker
        reply({"error": f"{type(e).__name__}: {e}"})
        return 1
    for line in sys.stdin:
        req = json.loads(line)
        if req.get("cmd") == "quit":
            break
        run = runners[req["config"]]
        steps, start = 0, time.perf_counter()
        while True:
            run()
            steps += 1
            elapsed = time.perf_counter() - start
            if elapsed >= req["min_time"] and steps >= 2:
                break
        reply({"seconds_per_step": elapsed / steps, "steps": steps})
    return 0


def _versions(name: str) -> str:
    if name == "torch":
        import torch

        return f"torch {torch.__version__}"
    if name in ("keras-jax", "tf-keras"):
        import keras

        backend = keras.backend.backend()
        if backend == "tensorflow":
            import tensorflow as tf

            return f"keras {keras.__version__} (tensorflow {tf.__version__})"
        import jax

        return f"keras {keras.__version__} (jax {jax.__version__})"
    import jax

    if name == "flax":
        import flax

        return f"flax {flax.__version__} (jax {jax.__version__})"
    return f"jax {jax.__version__}, {jax.device_count()} {jax.devices()[0].platform} device(s)"


def _gemm_worker(args) -> int:
    """The machine's float32 (and bfloat16) GEMM rate: 2048³ products with JAX and PyTorch."""
    out = sys.stdout
    sys.stdout = sys.stderr
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    n = args.gemm_size
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    device = "cuda" if args.platform == "gpu" else "cpu"
    ta = torch.as_tensor(a, device=device)
    ja = jax.device_put(a)
    jb = ja.astype(jnp.bfloat16)
    dot = jax.jit(lambda x: x @ x)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    fns = {"jax_f32": lambda: dot(ja).block_until_ready(),
           "jax_bf16": lambda: dot(jb).block_until_ready(),
           "torch_f32": lambda: (torch.mm(ta, ta), sync())}
    for f in fns.values():
        f()
    out.write(json.dumps({"ok": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        req = json.loads(line)
        if req.get("cmd") == "quit":
            break
        rates = {}
        for key, f in fns.items():
            best = math.inf
            for _ in range(3):
                start = time.perf_counter()
                f()
                best = min(best, time.perf_counter() - start)
            rates[key] = 2.0 * n**3 / best
        out.write(json.dumps(rates) + "\n")
        out.flush()
    return 0


# =============================================================================================
# Coordinator
# =============================================================================================


def _tf_python(args) -> str | None:
    """A Python that imports tensorflow: --tf-python, this one, or ../.venv-tf/bin/python."""
    candidates = [args.tf_python] if args.tf_python else [sys.executable, str(REPO / ".venv-tf" / "bin" / "python")]
    for py in candidates:
        if py and pathlib.Path(py).exists():
            ok = subprocess.run([py, "-c", "import tensorflow, keras"], capture_output=True, env=_child_env(args, "tf-keras"))
            if ok.returncode == 0:
                return py
    return None


def _child_env(args, name: str) -> dict:
    env = dict(os.environ)
    if not args.no_hugetlb:
        env.setdefault("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1")
    env["KERAS_BACKEND"] = "tensorflow" if name == "tf-keras" else "jax"
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    if args.platform == "cpu":
        env["JAX_PLATFORMS"] = "cpu"
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


class _Worker:
    def __init__(self, name: str, python: str, args, argv: list[str]):
        self.name = name
        # stderr to a file, not a pipe: a chatty framework must not block on a full pipe
        self.log = None if args.verbose else tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen([python, __file__, "--worker", name, *argv], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True, env=_child_env(args, name))
        self.info: dict = {}
        self.times: dict[str, list[float]] = {}

    def read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            err = ""
            if self.log is not None:
                self.log.seek(0)
                err = self.log.read()[-2000:]
            return {"error": f"worker exited (code {self.proc.wait()}): {err.strip()}"}
        return json.loads(line)

    def ask(self, obj) -> dict:
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2 rounds of 0.3 s per configuration (development)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--min-time", type=float, default=1.5, help="seconds per configuration per round (default 1.5)")
    p.add_argument("--impls", nargs="+", default=DEFAULT_IMPLS, choices=DEFAULT_IMPLS)
    p.add_argument("--seq-len", type=int, default=200)
    p.add_argument("--vocab", type=int, default=20000)
    p.add_argument("--embed", type=int, default=128)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--classes", type=int, default=2)
    p.add_argument("--gemm-size", type=int, default=2048)
    p.add_argument("--platform", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--tf-python", default=None, help="a Python with tensorflow for tf-keras")
    p.add_argument("--no-hugetlb", action="store_true", help="do not set GLIBC_TUNABLES=glibc.malloc.hugetlb=1")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
    p.add_argument("--verbose", action="store_true", help="show the workers' stderr")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.min_time = 2, 0.3
    if args.worker == "gemm":
        return _gemm_worker(args)
    if args.worker:
        return _worker(args.worker, args)

    shared = ["--seq-len", str(args.seq_len), "--vocab", str(args.vocab), "--embed", str(args.embed),
              "--hidden", str(args.hidden), "--classes", str(args.classes), "--gemm-size", str(args.gemm_size),
              "--platform", args.platform]
    impls = list(args.impls)
    if args.platform == "gpu" and "lstmjax-split" in impls:
        impls.remove("lstmjax-split")  # simulated host devices are a CPU device count
    env = _child_env(args, "lstmjax")
    print(f"{os.cpu_count()} CPU cores; GLIBC_TUNABLES={env.get('GLIBC_TUNABLES', '(unset)')}; platform {args.platform}; "
          f"T={args.seq_len}, vocab {args.vocab}, embed {args.embed}, LSTM {args.hidden}, {args.classes} classes, float32")
    print(f"{args.rounds} interleaved rounds, >= {args.min_time} s per implementation and configuration per round")

    started = time.perf_counter()
    ready: list[_Worker] = []
    for name in impls:  # one at a time, so that each first call (compile) is timed on a machine to itself
        python = sys.executable
        if name == "tf-keras":
            python = _tf_python(args)
            if python is None:
                print("tf-keras: skipped: no Python with tensorflow found (pip install tensorflow, or create "
                      f"{REPO / '.venv-tf'} with it, or pass --tf-python)")
                continue
        w = _Worker(name, python, args, shared)
        w.info = w.read()
        if "error" in w.info:
            print(f"{w.name}: skipped: {w.info['error']}")
            w.close()
            continue
        ready.append(w)
        print(f"{w.name}: {w.info['versions']}; separable-task loss {w.info['loss_first']:.3f} -> "
              f"{w.info['loss_last']:.3f}" + (f"; Adam {w.info['adam']}" if w.info.get("adam") else "")
              + f"; ready after {time.perf_counter() - started:.0f} s", flush=True)
    gemm = _Worker("gemm", sys.executable, args, shared)
    gemm_ok = "error" not in gemm.read()
    gemm_rates: list[dict] = []

    for r in range(args.rounds):
        order = ready if r % 2 == 0 else ready[::-1]
        for kind, batch in CONFIGS:
            key = f"{kind}{batch}"
            for w in order:
                reply = w.ask({"cmd": "time", "config": key, "min_time": args.min_time})
                if "error" in reply:
                    raise SystemExit(f"{w.name} failed while timing {key}: {reply['error']}")
                w.times.setdefault(key, []).append(reply["seconds_per_step"])
        if gemm_ok:
            gemm_rates.append(gemm.ask({"cmd": "time"}))
        print(f"  round {r + 1}/{args.rounds} done ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    for w in [*ready, gemm]:
        w.close()

    train_flop, infer_flop = flops_per_token(args.embed, args.hidden, args.classes)
    peak = None
    if gemm_rates:
        med = {k: statistics.median(g[k] for g in gemm_rates) for k in gemm_rates[0]}
        peak = max(med["jax_f32"], med["torch_f32"])
        print(f"\nGEMM {args.gemm_size}³ (median over rounds): float32 JAX {med['jax_f32'] / 1e9:.1f} GFLOP/s, "
              f"PyTorch {med['torch_f32'] / 1e9:.1f} GFLOP/s -> machine float32 rate {peak / 1e9:.1f} GFLOP/s; "
              f"bfloat16 JAX {med['jax_bf16'] / 1e9:.1f} GFLOP/s")
    print(f"FLOP per token: training {train_flop / 1e6:.2f} M, inference {infer_flop / 1e6:.2f} M")

    rows = []
    print(f"\n{'implementation':<15} {'config':<10} {'tokens/s (median)':>17} {'min–max':>21} "
          f"{'% fp32 GEMM':>11} {'1st call s':>10}")
    for kind, batch in CONFIGS:
        key = f"{kind}{batch}"
        for w in ready:
            rates = [batch * args.seq_len / s for s in w.times[key]]
            med = statistics.median(rates)
            flop = train_flop if kind == "train" else infer_flop
            frac = med * flop / peak if peak else float("nan")
            rows.append({"impl": w.name, "config": key, "tokens_per_s": med, "min": min(rates), "max": max(rates),
                         "gemm_fraction": frac, "first_call_s": w.info["first_call_s"][key]})
            print(f"{w.name:<15} {kind + ' B=' + str(batch):<10} {med:>17,.0f} {min(rates):>10,.0f}–{max(rates):<10,.0f} "
                  f"{100 * frac:>10.0f}% {w.info['first_call_s'][key]:>10.2f}")
        print()

    by = {(row["impl"], row["config"]): row["tokens_per_s"] for row in rows}
    ratios = {}
    for kind, batch in CONFIGS:
        key = f"{kind}{batch}"
        peers = {n: by[(n, key)] for n in PEERS if (n, key) in by}
        if ("lstmjax", key) in by and peers:
            best = max(peers, key=peers.get)
            ratios[key] = (by[("lstmjax", key)] / peers[best], best)
            print(f"{key:<9} lstmjax / fastest peer ({best}) = {ratios[key][0]:.2f}")
    print(f"(total {time.perf_counter() - started:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "gemm": gemm_rates, "ratios": ratios, "cores": os.cpu_count()}, f, indent=1)
    if ratios:
        print(f"min ratio vs best peer: {min(r for r, _ in ratios.values()):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
