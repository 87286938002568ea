"""Tutorial 10 (privacy): checks for a Chinese-mobile regex, the clipped mean gradient and the attack's AUC."""

from __future__ import annotations

import re

import jax
import numpy as np
import optax
import optax.contrib

from lstmjax.course._check import (
    Wrong,
    exercise,
    refuse_library_calls,
    returned,
    watching,
)
from lstmjax.course._i18n import tr

# (text, the mobile number it contains or None)
_MOBILE_CASES = (
    ("13812345678", "13812345678"),
    ("电话：13912345678。", "13912345678"),
    ("call 138 1234 5678 now", "138 1234 5678"),
    ("call 138-1234-5678 now", "138-1234-5678"),
    ("+86 15012345678", "+86 15012345678"),
    ("+8618612345678", "+8618612345678"),
    ("0086 17712345678", "0086 17712345678"),
    ("手机19912345678或", "19912345678"),
    ("12345678901", None),  # starts 12
    ("010-12345678", None),  # a Beijing landline
    ("11010519491231002X", None),  # an ID number
    ("138123456789", None),  # 12 digits
    ("913812345678", None),  # inside a longer run
    ("¥1,380,012,345.00", None),  # a price
    ("2024-03-15 13:45", None),  # a date and time
    ("1381234567", None),  # 10 digits
)


@exercise("10.1", "A regular expression for Chinese mobile numbers")
def _mobile(answer):
    if isinstance(answer, str):
        if answer.strip() in ("", "..."):
            raise Wrong(tr("write your pattern in place of '...'."))
        try:
            pattern = re.compile(answer)
        except re.error as error:
            raise Wrong(tr("the pattern does not compile: {error}.", error=error)) from None
    elif isinstance(answer, re.Pattern):
        pattern = answer
    else:
        raise Wrong(tr("give a pattern string or a compiled re.Pattern; got {type}.", type=type(answer).__name__))
    for text, want in _MOBILE_CASES:
        found = pattern.search(text)
        got = found.group() if found else None
        if want is None and got is not None:
            raise Wrong(tr("in {text} you found {got}, but it holds no mobile number.", text=repr(text), got=repr(got)))
        if want is not None and got is None:
            raise Wrong(tr("no match in {text}; it holds the mobile number {want}.", text=repr(text), want=repr(want)))
        if want is not None and got.strip() != want:
            raise Wrong(tr("in {text} you matched {got}; the whole number is {want}.", text=repr(text), got=repr(got),
                           want=repr(want)))
    return tr("finds the mobile number in all {positive} positive cases and nothing in the {negative} negative ones.",
              positive=sum(w is not None for _, w in _MOBILE_CASES), negative=sum(w is None for _, w in _MOBILE_CASES))


@exercise("10.2", "Write clipped_mean(grads, clip)")
def _clipped_mean(answer):
    from lstmjax.privacy.dp import dp_aggregate

    key = jax.random.key(0)
    grads = {"dense": {"kernel": jax.random.normal(key, (5, 4, 3)) * 2.0,
                       "bias": jax.random.normal(jax.random.fold_in(key, 1), (5, 3))},
             "embedding": jax.random.normal(jax.random.fold_in(key, 2), (5, 6, 4)) * 0.1}
    grads["dense"]["kernel"] = grads["dense"]["kernel"].at[2].set(0.0)  # an example with a zero gradient
    grads["dense"]["bias"] = grads["dense"]["bias"].at[2].set(0.0)
    grads["embedding"] = grads["embedding"].at[2].set(0.0)
    library = [dp_aggregate, optax.contrib.differentially_private_aggregate, optax.per_example_global_norm_clip]
    for clip in (0.5, 3.0, 1e6):
        with watching(*library) as seen:
            got = returned(answer(grads, clip), "clipped_mean")
        refuse_library_calls(seen, tr("the clipping and the mean"))
        tx = dp_aggregate(clip, 0.0, key, batch_size=5)
        want, _ = tx.update(grads, tx.init(None))
        if jax.tree.structure(jax.tree.map(np.asarray, got)) != jax.tree.structure(want):
            raise Wrong(tr("return a pytree shaped like one example's gradient (the same dict structure)."))
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            g = np.asarray(g)
            if g.shape != w.shape:
                raise Wrong(tr("a leaf has shape {got}; expected {want} (the batch axis averaged away).", got=g.shape,
                               want=w.shape))
            if np.isnan(g).any():
                raise Wrong(tr("NaN in the result: an all-zero gradient has norm 0; do not divide by it unguarded."))
            if not np.allclose(g, np.asarray(w), rtol=1e-5, atol=1e-6):
                raise Wrong(tr("at clip={clip} the result differs from dp_aggregate's (noise 0). Is the norm the "
                               "global one over all leaves of an example, and do you divide by the batch size?",
                               clip=clip))
    return tr("equals dp_aggregate at noise 0 for clip 0.5, 3 and 10⁶ (a zero gradient included).")


@exercise("10.3", "Write auc(member_losses, nonmember_losses)")
def _auc(answer):
    from lstmjax.privacy.membership import membership_attack

    rng = np.random.default_rng(0)
    cases = [
        (rng.normal(0.3, 0.2, 40), rng.normal(0.7, 0.3, 60)),
        (np.round(rng.random(50), 1), np.round(rng.random(30), 1)),  # many ties
        (np.array([0.1, 0.2]), np.array([0.1, 0.2])),
        (np.array([1.0, 2.0, 3.0]), np.array([0.1])),
    ]
    library = [membership_attack]
    try:
        import sklearn.metrics
        library += [sklearn.metrics.roc_auc_score, sklearn.metrics.roc_curve]
    except ImportError:  # pragma: no cover - scikit-learn is in the tutorials' extra
        pass
    for members, nonmembers in cases:
        with watching(*library) as seen:
            got = returned(answer(members, nonmembers), "auc")
        refuse_library_calls(seen, tr("the AUC"))
        want = membership_attack(members, nonmembers)["auc"]
        try:
            got = float(got)
        except (TypeError, ValueError):
            raise Wrong(tr("return a number; got {got}.", got=repr(got))) from None
        if not np.isclose(got, want, atol=1e-9):
            tied = len(np.unique(np.r_[members, nonmembers])) < len(members) + len(nonmembers)
            hint = tr(" (ties count one half)") if tied else ""
            if np.isclose(got, 1 - want):
                hint = tr(" (members should have the *lower* loss: you computed the other direction)")
            raise Wrong(tr("for {members} members and {nonmembers} non-members you return {got:.4f}, "
                           "the attack's AUC is {want:.4f}{hint}.", members=len(members),
                           nonmembers=len(nonmembers), got=got, want=want, hint=hint))
    return tr("equals the attack's ROC AUC on random, tied and degenerate losses.")
