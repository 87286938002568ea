"""Tutorial 06 (data parallelism): checkers for its exercises.

They use every device JAX sees (the tutorial simulates 8 CPU devices with
``jax.config.update("jax_num_cpu_devices", 8)``) and need at least two.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from lstmjax.course._check import Wrong, exercise, returned
from lstmjax.course._i18n import tr

F_TOY, N_TOY, LR = 5, 64, 0.5  # the toy problem of the tutorial's §3


def _loss_sum(params, x, y, mask):
    logits = x @ params["w"] + params["b"]
    losses = jnp.logaddexp(0.0, logits) - y * logits
    return jnp.sum(jnp.where(mask, losses, 0.0))


def _toy():
    k1, _, k3 = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(k1, (N_TOY, F_TOY))
    y = (x @ jnp.arange(1.0, F_TOY + 1) > 0).astype(jnp.float32)
    params = {"w": 0.1 * jax.random.normal(k3, (F_TOY,)), "b": jnp.zeros(())}
    return params, x, y


def _mean_grad(params, x, y, mask):
    return jax.grad(lambda p: _loss_sum(p, x, y, mask) / jnp.sum(mask).astype(x.dtype))(params)


def _devices() -> int:
    D = jax.device_count()
    if D < 2 or N_TOY % D:
        raise Wrong(tr("JAX sees {D} device(s); this check needs 2, 4 or 8. Run "
                       "jax.config.update('jax_num_cpu_devices', 8) before any JAX computation.", D=D))
    return D


def _close_tree(got, want, what: str) -> None:
    for name in want:
        a, b = np.asarray(got[name]), np.asarray(want[name])
        if a.shape != b.shape or not np.allclose(a, b, rtol=1e-5, atol=1e-6):
            raise Wrong(tr("{what}: {name!r} is {got}, expected {want}.", what=what, name=name,
                           got=np.round(a, 5).tolist(), want=np.round(b, 5).tolist()))


@exercise("06.1", "psum / count against pmean of local means")
def _grad_averaging(answer):
    if not (isinstance(answer, tuple) and len(answer) == 2):
        raise Wrong(tr("pass the pair (grad_psum_count, grad_pmean)."))
    grad_psum_count, grad_pmean = answer
    D = _devices()
    params, x, y = _toy()

    def split(a):
        return a.reshape(D, N_TOY // D, *a.shape[1:])

    def run(f, mask):
        out = jax.pmap(f, axis_name="devices", in_axes=(None, 0, 0, 0))(params, split(x), split(y), split(mask))
        if out is None:
            raise Wrong(tr("a function returned None (is its body still `...`?)."))
        return jax.tree.map(lambda t: t[0], out)

    full = jnp.ones(N_TOY, bool)
    for f, name in ((grad_psum_count, "grad_psum_count"), (grad_pmean, "grad_pmean")):
        _close_tree(run(f, full), _mean_grad(params, x, y, full), tr("{name} on a full batch", name=name))
    m37 = jnp.arange(N_TOY) < 37  # 37 real examples: the last devices hold fewer, some none
    local = [jax.tree.map(lambda t, mb=mb: t / max(int(jnp.sum(mb)), 1),
                          jax.grad(_loss_sum)(params, xb, yb, mb))
             for xb, yb, mb in zip(split(x), split(y), split(m37))]
    mean_of_means = jax.tree.map(lambda *t: sum(t) / D, *local)
    exact = run(grad_psum_count, m37)
    if np.allclose(exact["w"], mean_of_means["w"], rtol=1e-5, atol=1e-6):
        raise Wrong(tr("grad_psum_count averages the devices' mean gradients; psum the gradient *sums* and "
                       "divide by the psum of the counts."))
    _close_tree(exact, _mean_grad(params, x, y, m37), tr("grad_psum_count with 37 real examples of 64"))
    wrong = run(grad_pmean, m37)
    if not all(np.isfinite(np.asarray(t)).all() for t in jax.tree.leaves(wrong)):
        raise Wrong(tr("grad_pmean returns NaN when a device holds no real example: divide by max(count, 1)."))
    _close_tree(wrong, mean_of_means, tr("grad_pmean (the mean of the local means)"))
    return tr("psum/count is exact with masked padding; pmean of local means weights devices, not examples.")


@exercise("06.2", "The data-parallel step with jax.shard_map")
def _shard_map(step):
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    D = _devices()
    params, x, y = _toy()
    mask = jnp.ones(N_TOY, bool)
    mesh = jax.make_mesh((D,), ("data",))
    args = (jax.device_put(params, NamedSharding(mesh, P())),
            *jax.device_put((x, y, mask), NamedSharding(mesh, P("data"))))
    out = step(*args)
    if out is None:
        raise Wrong(tr("your step returned None (is its body still `...`?)."))
    new, g = out
    want_g = _mean_grad(params, x, y, mask)
    if np.shape(new["w"]) != (F_TOY,):
        raise Wrong(tr("new 'w' has shape {shape}: global arrays in and out (out_specs=P()), no device axis.",
                       shape=np.shape(new["w"])))
    got_g = np.asarray(g["w"])
    if np.allclose(got_g, D * np.asarray(want_g["w"]), rtol=1e-5, atol=1e-6):
        raise Wrong(tr("the gradient is {D}× too large: inside shard_map jax.grad with respect to the replicated "
                       "params is already summed over 'data'; do not psum it again (only the count).", D=D))
    _close_tree(g, want_g, tr("the gradient"))
    _close_tree(new, jax.tree.map(lambda p, t: p - LR * t, params, want_g), tr("the new parameters (lr {lr})", lr=LR))
    if hasattr(step, "lower") and "all-reduce" not in step.lower(*args).compile().as_text():
        raise Wrong(tr("the compiled step has no all-reduce: the count needs lax.psum(jnp.sum(mask), 'data')."))
    return tr("shard_map step == one device; the all-reduce is in the compiled program.")


@exercise("06.3", "Bytes of gradients combined per training step")
def _allreduce_bytes(allreduce_bytes):
    from lstmjax.nn.classifier import TextClassifier

    ids = jnp.ones((1, 4), jnp.int32)
    for V, E, H, C in ((20000, 128, 128, 2), (5000, 64, 32, 3), (300, 16, 100, 7)):
        model = TextClassifier(V, C, embed_dim=E, hidden_size=H)
        shapes = jax.eval_shape(lambda k, m=model: m.init(k, ids), jax.random.key(0))["params"]  # shapes only
        # the gradient pytree has the parameters' shapes; every leaf is float32
        want = sum(int(np.prod(a.shape)) * a.dtype.itemsize for a in jax.tree.leaves(shapes))
        where = f"allreduce_bytes({V}, {E}, {H}, {C})"
        got = returned(allreduce_bytes(V, E, H, C), "allreduce_bytes")
        if got * 4 == want:
            raise Wrong(tr("{where} = {got:,} is the number of gradient values; float32 takes 4 bytes each.",
                           where=where, got=got))
        if got == want - 4 * V * E:
            raise Wrong(tr("{where} = {got:,} leaves out the embedding table: its gradient is combined too "
                           "(a dense V × E array, mostly zeros).", where=where, got=got))
        if got != want:
            raise Wrong(tr("{where} = {got:,} bytes; the gradients of TextClassifier({V}, {C}, embed_dim={E}, "
                           "hidden_size={H}) take {want:,} bytes (embedding V·E, LSTM 4H(E+H)+4H, dense H·C+C, "
                           "4 bytes each).", where=where, got=got, V=V, C=C, E=E, H=H, want=want))
    document = allreduce_bytes(20000, 128, 128, 2)
    return tr("right at three sizes: {document:,} bytes of float32 gradients per step for the document's model "
              "({mib:.1f} MiB), 95 % of them the embedding's.", document=document, mib=document / 2**20)


@exercise("06.4", "Scaling the learning rate with the global batch")
def _scaled_lr(fn):
    for base_lr, base_batch, batch in ((0.1, 256, 2048), (1e-3, 32, 256), (0.5, 64, 64), (0.2, 512, 128)):
        for rule, want in (("linear", base_lr * batch / base_batch), ("sqrt", base_lr * math.sqrt(batch / base_batch))):
            got = fn(base_lr, base_batch, batch, rule)
            if got is None:
                raise Wrong(tr("your function returned None (is its body still `...`?)."))
            if not math.isclose(float(got), want, rel_tol=1e-9):
                raise Wrong(tr("scaled_lr({base_lr}, {base_batch}, {batch}, {rule!r}) = {got}, expected {want:.6g} "
                               "({formula}).", base_lr=base_lr, base_batch=base_batch, batch=batch, rule=rule,
                               got=got, want=want, formula="η·B/B₀" if rule == "linear" else "η·√(B/B₀)"))
    return tr("linear (SGD, with warm-up) and square-root (Adam) scaling of the learning rate.")
