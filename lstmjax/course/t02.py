"""Tutorial 02 (the pipeline): checkers for its exercises."""

from __future__ import annotations

import math

import numpy as np

from lstmjax.course._check import Wrong, exercise
from lstmjax.course._i18n import tr


def _confusion(y_true, y_pred, k):
    """Rows: true class, columns: predicted class (scikit-learn's convention)."""
    cm = np.zeros((k, k), np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


@exercise("02.1", "Balanced accuracy from a confusion matrix")
def _balanced_accuracy(fn):
    from lstmjax.training.metrics import classification_report

    always_negative = np.array([[900, 0], [100, 0]])  # 900 negatives, 100 positives, all called negative
    got = fn(always_negative)
    if got is None:
        raise Wrong(tr("your function returned None (is its body still `...`?)."))
    if math.isclose(float(got), 0.9):
        raise Wrong(tr("for 'always negative' on 900 negatives and 100 positives you return 0.9, the plain "
                       "accuracy; balanced accuracy is the mean of the per-class recalls: (1 + 0) / 2."))
    if not math.isclose(float(got), 0.5):
        raise Wrong(tr("for 'always negative' ([[900, 0], [100, 0]]) you return {got}, expected 0.5.", got=got))
    rng = np.random.default_rng(1)
    for k in (2, 3, 4):
        y_true, y_pred = rng.integers(0, k, 200), rng.integers(0, k, 200)
        cm = _confusion(y_true, y_pred, k)
        want = float(np.mean([np.mean(y_pred[y_true == c] == c) for c in range(k)]))  # per-class recalls
        got = fn(cm)
        if not math.isclose(float(got), want, rel_tol=1e-9):
            transposed = float(np.mean(np.diag(cm) / cm.sum(axis=0)))
            hint = (tr(" That is the mean *precision*: rows are the true classes, so divide the diagonal "
                       "by the row sums.") if math.isclose(float(got), transposed, rel_tol=1e-9) else "")
            raise Wrong(tr("on a random {k}×{k} confusion matrix you return {got:.4f}, expected {want:.4f}.{hint}",
                           k=k, got=got, want=want, hint=hint))
    macro_recall = classification_report(np.array([[40, 10], [5, 45]]))["recall"]
    if not math.isclose(float(fn(np.array([[40, 10], [5, 45]]))), float(macro_recall), rel_tol=1e-6):
        raise Wrong(tr("on [[40, 10], [5, 45]] your value differs from lstmjax's macro recall."))
    return tr("balanced accuracy = mean per-class recall = lstmjax's macro recall; 0.5 for a constant classifier.")


@exercise("02.2", "The confusion matrix at a decision threshold")
def _confusion_at(fn):
    rng = np.random.default_rng(2)
    y = (rng.random(300) < 0.2).astype(np.int32)
    p_pos = np.clip(0.35 * y + rng.random(300) * 0.65, 0.0, 1.0)
    p_pos[:5] = 0.5  # ties at the threshold: argmax of [0.5, 0.5] is class 0
    for threshold in (0.5, 0.3, 0.8):
        got = fn(p_pos, y, threshold)
        if got is None:
            raise Wrong(tr("your function returned None (is its body still `...`?)."))
        got = np.asarray(got)
        want = _confusion(y, (p_pos > threshold).astype(np.int32), 2)
        if got.shape != (2, 2):
            raise Wrong(tr("return a 2×2 matrix, got shape {shape}.", shape=got.shape))
        if np.array_equal(got, want.T) and not np.array_equal(got, want):
            raise Wrong(tr("the matrix is transposed: rows are the *true* classes, columns the predicted ones."))
        if not np.array_equal(got, want):
            if np.array_equal(got, _confusion(y, (p_pos >= threshold).astype(np.int32), 2)):
                raise Wrong(tr("at threshold {threshold} a probability exactly equal to it is called positive; "
                               "'pos' means P(pos) > threshold (argmax picks class 0 on a tie).", threshold=threshold))
            raise Wrong(tr("at threshold {threshold} you return {got}, expected {want}.", threshold=threshold,
                           got=got.tolist(), want=want.tolist()))
    if np.asarray(fn(p_pos, y, 1.0))[:, 1].sum() != 0:
        raise Wrong(tr("at threshold 1.0 nothing should be called positive."))
    return tr("the confusion matrix at any threshold; 0.5 reproduces argmax.")


def _early_stopping_reference(scores, patience):
    best_score, best_epoch = -math.inf, None
    for epoch, score in enumerate(scores, start=1):
        if score > best_score:
            best_score, best_epoch = score, epoch
        if epoch - best_epoch >= patience:
            return best_epoch, epoch
    return best_epoch, len(scores)


@exercise("02.3", "Early stopping by hand")
def _early_stopping(fn):
    cases = [([0.1, 0.3, 0.2, 0.25, 0.1], 2), ([0.1, 0.2, 0.3], 2), ([0.5, 0.4, 0.4, 0.4], 3),
             ([0.5, 0.5, 0.5], 1), ([0.2, 0.6, 0.6, 0.1, 0.7, 0.3], 3)]
    rng = np.random.default_rng(3)
    cases += [(list(np.round(rng.random(int(rng.integers(1, 12))), 1)), int(rng.integers(1, 4)))
              for _ in range(30)]
    for scores, patience in cases:
        want = _early_stopping_reference(scores, patience)
        got = fn(list(scores), patience=patience)
        if got is None:
            raise Wrong(tr("your function returned None (is its body still `...`?)."))
        if tuple(got) != want:
            hint = ""
            if got[0] != want[0] and scores.count(max(scores)) > 1:
                hint = tr(" A tie is not an improvement: the best epoch is the *first* with the highest score.")
            raise Wrong(tr("scores {scores}, patience {patience}: got {got}, expected {want} (best epoch, epochs "
                           "run).{hint}", scores=list(scores), patience=patience, got=tuple(got), want=want,
                           hint=hint))
    return tr("best epoch and stopping epoch agree with fit's rule on {n} histories.", n=len(cases))


@exercise("02.4", "Is a difference in accuracy bigger than the noise?")
def _standard_error(fn):
    rng = np.random.default_rng(4)
    for accuracy, n in ((0.75, 1066), (0.5, 200), (0.9, 5000)):
        got = fn(accuracy, n)
        if got is None:
            raise Wrong(tr("your function returned None (is its body still `...`?)."))
        # an independent reference: simulate 20,000 test sets of n examples, each right with p = accuracy
        simulated = float(np.std(rng.binomial(n, accuracy, 20_000) / n))
        call = f"standard_error({accuracy}, {n})"
        if math.isclose(float(got), math.sqrt(accuracy * (1 - accuracy)), rel_tol=1e-6):
            raise Wrong(tr("{call} = {got:.4f} is the spread of *one* example's right/wrong; the accuracy averages "
                           "n of them, so divide the variance by n.", call=call, got=got))
        if abs(float(got) / simulated - 1) > 0.05:
            raise Wrong(tr("{call} = {got:.4f}, but the accuracies of 20,000 simulated test sets of {n} examples "
                           "spread by {simulated:.4f}.", call=call, got=got, n=n, simulated=simulated))
    return tr("√(p(1−p)/n) matches simulation; on 1,066 test reviews at 75 % accuracy one standard error "
              "is {error:.3f}, so differences under ~3 points are noise.", error=fn(0.75, 1066))
