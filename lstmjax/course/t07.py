"""Tutorial 07 (overfitting): checks for random swap, stratified folds and AdamW from parts."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lstmjax.course._check import (
    Wrong,
    exercise,
    refuse_library_calls,
    returned,
    watching,
)
from lstmjax.course._i18n import tr


@exercise("07.1", "Write my_random_swap(tokens, n, rng)")
def _random_swap(answer):
    from lstmjax.data.augment import random_swap

    with watching(random_swap) as called:
        return _random_swap_check(answer, called)


def _random_swap_check(answer, called):
    tokens = [f"w{i}" for i in range(6)]
    for n in (0, 1, 2, 5):
        for seed in range(20):
            original = list(tokens)
            out = returned(answer(original, n, np.random.default_rng(seed)), "my_random_swap")
            refuse_library_calls(called, tr("the swap"))
            if original != tokens:
                raise Wrong(tr("the input list was changed: work on a copy (out = list(tokens))."))
            if not isinstance(out, list):
                raise Wrong(tr("return a list; got {kind}.", kind=type(out).__name__))
            if sorted(out) != sorted(tokens):
                raise Wrong(tr("the result {out} is not a permutation of {tokens}: swaps must not add or lose tokens.",
                               out=out, tokens=tokens))
            changed = sum(a != b for a, b in zip(out, tokens))
            if changed > 2 * n:
                raise Wrong(tr("with n={n} swaps at most {most} positions can change; {changed} did ({out}).",
                               n=n, most=2 * n, changed=changed, out=out))
            if n >= 1 and changed == 0 and n % 2 == 1:
                raise Wrong(tr("n={n} swaps of distinct positions left the list unchanged ({out}): "
                               "are the two positions distinct?", n=n, out=out))
    for short in ([], ["only"]):
        if answer(list(short), 3, np.random.default_rng(0)) != short:
            raise Wrong(tr("a list of fewer than two tokens must come back unchanged; {short} did not.", short=short))
    swapped = {pair: 0 for pair in itertools.combinations(range(4), 2)}
    for seed in range(600):
        out = answer(["a", "b", "c", "d"], 1, np.random.default_rng(seed))
        pos = tuple(i for i, (x, y) in enumerate(zip(out, "abcd")) if x != y)
        if len(pos) != 2:
            raise Wrong(tr("one swap must change exactly two positions; {out} changes {count}.", out=out,
                           count=len(pos)))
        swapped[pos] += 1
    low = min(swapped.values())
    if low < 50:  # expected 100 each; 50 is more than 5 standard deviations below
        raise Wrong(tr("the swaps are not uniform over pairs of positions: counts {counts} over 600 draws.",
                       counts=swapped))
    return tr("a permutation, at most 2n positions changed, input untouched, uniform over pairs.")


@exercise("07.2", "Write my_stratified_kfold(labels, k, seed)")
def _stratified_kfold(answer):
    from lstmjax.training.crossval import stratified_kfold

    with watching(stratified_kfold) as called:
        return _stratified_kfold_check(answer, called)


def _stratified_kfold_check(answer, called):
    rng = np.random.default_rng(7)
    cases = [(np.array([0] * 10 + [1] * 5), 5), (rng.integers(0, 3, 103), 4), (np.array([1, 0] * 20), 2),
             (rng.integers(0, 2, 57), 10)]
    for labels, k in cases:
        folds = returned(answer(labels, k, 0), "my_stratified_kfold")
        refuse_library_calls(called, tr("the folds"))
        if len(folds) != k:
            raise Wrong(tr("expected {k} (train_idx, val_idx) pairs; got {got}.", k=k, got=len(folds)))
        n = len(labels)
        seen = np.concatenate([np.asarray(v) for _, v in folds])
        if sorted(seen.tolist()) != list(range(n)):
            raise Wrong(tr("every example must be in exactly one val_idx (n={n}, k={k}); "
                           "{given} indices given, {distinct} distinct.", n=n, k=k, given=len(seen),
                           distinct=len(set(seen.tolist()))))
        sizes = [len(v) for _, v in folds]
        if max(sizes) - min(sizes) > 1:
            raise Wrong(tr("fold sizes differ by more than one: {sizes} (n={n}, k={k}).", sizes=sizes, n=n, k=k))
        for f, (train, val) in enumerate(folds):
            rest = sorted(set(range(n)) - set(np.asarray(val).tolist()))
            if sorted(np.asarray(train).tolist()) != rest:
                raise Wrong(tr("fold {f}: train_idx must be every index not in val_idx.", f=f))
        for c in np.unique(labels):
            counts = [int(np.sum(labels[np.asarray(v)] == c)) for _, v in folds]
            if max(counts) - min(counts) > 1:
                raise Wrong(tr("class {c} is spread unevenly over the folds: {counts} per fold (n={n}, k={k}).",
                               c=c, counts=counts, n=n, k=k))
    a = answer(cases[1][0], 4, 0)
    b = answer(cases[1][0], 4, 0)
    if any(not np.array_equal(np.sort(x[1]), np.sort(y[1])) for x, y in zip(a, b)):
        raise Wrong(tr("the same seed must give the same folds."))
    return tr("a partition, balanced sizes, classes spread evenly, deterministic for a seed.")


@exercise("07.3", "Write my_adamw(learning_rate, weight_decay) from optax parts")
def _adamw(answer):
    with jax.numpy_dtype_promotion("standard"):  # optax mixes Python floats with int32 step counts
        return _adamw_check(answer)


def _adamw_check(answer):
    lr, wd = 0.01, 0.1
    tx = answer(lr, wd)
    if not isinstance(tx, optax.GradientTransformation):
        raise Wrong(tr("return an optax.GradientTransformation (optax.chain(...)); got {kind}.",
                       kind=type(tx).__name__))
    reference = optax.adamw(lr, weight_decay=wd)
    coupled = optax.chain(optax.add_decayed_weights(wd), optax.adam(lr))  # L2 through Adam
    key = jax.random.key(0)
    params = {"w": jax.random.normal(key, (4, 3), jnp.float32), "b": jnp.ones((3,), jnp.float32)}
    p_ans, p_ref, p_l2 = params, params, params
    s_ans, s_ref, s_l2 = tx.init(params), reference.init(params), coupled.init(params)
    for step in range(10):
        grads = jax.tree.map(lambda p, k=step: jax.random.normal(jax.random.fold_in(key, k + 1), p.shape, p.dtype),
                             params)
        u, s_ans = tx.update(grads, s_ans, p_ans)
        p_ans = optax.apply_updates(p_ans, u)
        u, s_ref = reference.update(grads, s_ref, p_ref)
        p_ref = optax.apply_updates(p_ref, u)
        u, s_l2 = coupled.update(grads, s_l2, p_l2)
        p_l2 = optax.apply_updates(p_l2, u)
    for name in params:
        if not np.allclose(p_ans[name], p_ref[name], rtol=1e-5, atol=1e-6):
            err = float(jnp.max(jnp.abs(p_ans[name] - p_ref[name])))
            raise Wrong(tr("after 10 steps '{name}' differs from optax.adamw by up to {err:.2e}: the order is "
                           "scale_by_adam, then add_decayed_weights(weight_decay), then scale(-learning_rate).",
                           name=name, err=err))
    gap = max(float(jnp.max(jnp.abs(p_l2[n] - p_ref[n]))) for n in params)
    return tr("equals optax.adamw over 10 steps. L2 through Adam (add_decayed_weights before adam) ends up to "
              "{gap:.1e} away: Adam rescales the decay term with the gradients.", gap=gap)


@exercise("07.4", "Write fold_gain(candidate, baseline): the paired fold-by-fold gain and its standard error")
def _fold_gain(answer):
    rng = np.random.default_rng(7)
    for k in (3, 5, 10):
        base = 0.74 + 0.02 * rng.standard_normal(k)  # folds differ a lot from each other ...
        cand = base + 0.01 + 0.003 * rng.standard_normal(k)  # ... but the candidate wins on each
        got = answer(cand, base)
        if got is None:
            raise Wrong(tr("fold_gain returned None: write the function body."))
        try:
            mean, se = (float(v) for v in got)
        except (TypeError, ValueError):
            raise Wrong(tr("fold_gain should return two numbers (mean, standard error); got {got!r}", got=got)) from None
        diff = cand - base
        ref_mean, ref_se = diff.mean(), diff.std(ddof=1) / np.sqrt(k)
        if not np.isclose(mean, ref_mean, atol=1e-9):
            raise Wrong(tr("with {k} folds the mean gain is {ref_mean:+.4f}; got {mean:+.4f}. "
                           "Subtract fold by fold (candidate − baseline), then average.", k=k, ref_mean=ref_mean,
                           mean=mean))
        if not np.isclose(se, ref_se, rtol=1e-6):
            unpaired = np.sqrt(cand.var(ddof=1) / k + base.var(ddof=1) / k)
            if np.isclose(se, unpaired, rtol=1e-6):
                raise Wrong(tr("that is the unpaired standard error: both models saw the same folds, so take the "
                               "spread of the fold-by-fold differences — the folds' own difficulty cancels."))
            if np.isclose(se, diff.std(ddof=0) / np.sqrt(k), rtol=1e-6) or np.isclose(se, diff.std(ddof=1), rtol=1e-6):
                raise Wrong(tr("use the sample standard deviation of the differences (ddof=1) divided by √k."))
            raise Wrong(tr("with {k} folds the standard error is {ref_se:.5f}; got {se:.5f}.", k=k, ref_se=ref_se,
                           se=se))
    return tr("paired gain and standard error right for 3, 5 and 10 folds: the fold-to-fold spread (±0.02) "
              "cancels, leaving a gain of ≈ +0.01 measured to about ±0.001.")
