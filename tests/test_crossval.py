"""Stratified k-fold cross-validation: fold proportions against scikit-learn; mean ± std of fit/evaluate."""

import jax
import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold

import lstmjax
from lstmjax import TextClassifier
from lstmjax.training.crossval import cross_validate, stratified_kfold
from lstmjax.training.state import create_train_state, make_optimizer


def _data(seed=0, n=24):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    ids = [[int(2 + 3 * y + rng.integers(3))] * int(rng.integers(1, 6)) for y in labels]
    return {"token_ids": ids, "label": labels.tolist()}


def test_exported_from_the_package():
    assert lstmjax.cross_validate is cross_validate and lstmjax.stratified_kfold is stratified_kfold


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("seed", [0, 1])
def test_stratified_kfold_keeps_proportions(k, seed):
    labels = np.random.default_rng(seed).choice(3, size=47, p=[0.6, 0.3, 0.1])
    folds = stratified_kfold(labels, k, seed)
    assert len(folds) == k
    val = np.concatenate([v for _, v in folds])
    assert sorted(val.tolist()) == list(range(47))  # every index held out exactly once
    for train, v in folds:
        assert np.intersect1d(train, v).size == 0 and len(train) + len(v) == 47
    sizes = [len(v) for _, v in folds]
    assert max(sizes) - min(sizes) <= 1
    ours = sorted(np.bincount(labels[v], minlength=3).tolist() for _, v in folds)
    theirs = sorted(np.bincount(labels[v], minlength=3).tolist()
                    for _, v in StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(47), labels))
    for c in range(3):  # per class, the same multiset of fold counts as scikit-learn
        assert sorted(o[c] for o in ours) == sorted(t[c] for t in theirs)
    assert [v.tolist() for _, v in stratified_kfold(labels, k, seed)] == [v.tolist() for _, v in folds]


def test_stratified_kfold_errors():
    with pytest.raises(ValueError):
        stratified_kfold([0, 1, 0], k=1)
    with pytest.raises(ValueError):
        stratified_kfold([0, 1, 0], k=4)


def test_cross_validate_mean_and_std():
    data = _data(2, n=18)
    model = TextClassifier(vocab_size=30, num_classes=3, embed_dim=4, hidden_size=4)
    tx = make_optimizer("adam", 2e-2)
    cv = cross_validate(lambda f: create_train_state(model, jax.random.key(f), tx), data, k=3, epochs=1,
                        batch_size=6)
    assert len(cv["folds"]) == 3 and sum(r["support"] for r in cv["folds"]) == 18
    for metric in ("accuracy", "f1", "loss"):
        values = [r[metric] for r in cv["folds"]]
        np.testing.assert_allclose(cv["mean"][metric], np.mean(values))
        np.testing.assert_allclose(cv["std"][metric], np.std(values))


def test_augmented_copies_follow_their_original_row():
    data = _data(3, n=12)
    n_aug = 2
    # 12 originals, then row i's two copies (as augment_dataset lays them out); "row" = the origin
    origin = np.concatenate([np.arange(12), np.repeat(np.arange(12), n_aug)])
    aug = {"token_ids": data["token_ids"] + [ids + [29] for ids in data["token_ids"] for _ in range(n_aug)],
           "label": data["label"] + [y for y in data["label"] for _ in range(n_aug)], "row": origin.tolist()}
    model = TextClassifier(vocab_size=30, num_classes=3, embed_dim=4, hidden_size=4)
    seen = []

    def make_state(f):
        return create_train_state(model, jax.random.key(f), make_optimizer())

    import lstmjax.training.loop as loop

    real_fit = loop.fit

    def spy_fit(state, train, **kw):
        seen.append(train)
        return real_fit(state, train, **kw)

    loop.fit = spy_fit
    try:
        cv = cross_validate(make_state, aug, k=3, epochs=1, batch_size=8, origin=origin)
    finally:
        loop.fit = real_fit
    assert sum(r["support"] for r in cv["folds"]) == 12  # only originals are held out
    for (train_pos, val_pos), train in zip(stratified_kfold(np.array(data["label"]), 3, 0), seen):
        assert len(train["label"]) == len(train_pos) * (1 + n_aug)  # a training fold has its rows' copies
        assert not set(train["row"]) & set(val_pos.tolist())  # no copy of a held-out row is trained on
    with pytest.raises(ValueError, match="not an original row"):
        cross_validate(make_state, aug, k=3, epochs=1, origin=np.r_[origin[:-1], 13])
