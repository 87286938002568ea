"""The exercise registry and :func:`check`."""

from __future__ import annotations

import dataclasses
import math
import traceback
from collections.abc import Callable
from typing import Any

from lstmjax.course._i18n import tr

_REGISTRY: dict[str, tuple[Callable[..., str], str]] = {}


class Wrong(AssertionError):
    """Raised by a checker with a message telling the learner what is wrong."""


def check_share(got, want: float, *, where: str, likely_mistake: float, hint: str, digits: int = 4) -> None:
    """Raise :class:`Wrong` unless ``got`` ≈ ``want``; say ``hint`` when ``got`` is ``likely_mistake``.

    Example:
      >>> check_share(0.5, 0.5, where="x", likely_mistake=0.25, hint="")
      >>> check_share(0.25, 0.5, where="on x", likely_mistake=0.25, hint=" Counted types?")
      Traceback (most recent call last):
      ...
      lstmjax.course._check.Wrong: on x you return 0.2500, expected 0.5000. Counted types?
    """
    if math.isclose(float(got), want, rel_tol=1e-9, abs_tol=1e-12):
        return
    said = hint if math.isclose(float(got), likely_mistake, rel_tol=1e-9) else ""
    got_text, want_text = f"{float(got):.{digits}f}", f"{want:.{digits}f}"
    raise Wrong(tr("{where} you return {got}, expected {want}.{hint}", where=where, got=got_text, want=want_text,
                   hint=said))


@dataclasses.dataclass(frozen=True)
class Result:
    """The outcome of :func:`check`: ``ok`` and the message shown to the learner.

    Truthy exactly when the answer is right, so a solution can ``assert course.check(...)``.

    Example:
      >>> Result("00.1", True, "fine")
      Result(exercise='00.1', ok=True, message='fine')
      >>> bool(Result("00.1", False, "no"))
      False
    """

    exercise: str
    ok: bool
    message: str

    def __bool__(self) -> bool:
        return self.ok


def exercise(exercise_id: str, title: str) -> Callable:
    """Register ``checker(answer, **context) -> str`` as the check of ``exercise_id``.

    The checker returns a short message saying what was verified, or raises :class:`Wrong`
    (or ``AssertionError``) with a message that says what is wrong and, where it helps, how to
    find the mistake. Any other exception from the learner's code is reported, not raised.

    Example:
      >>> @exercise("00.9", "an example")
      ... def _(answer):
      ...     if answer != 42:
      ...         raise Wrong(f"got {answer!r}, expected the answer to everything")
      ...     return "42 it is."
      >>> bool(check("00.9", 42, quiet=True)), check("00.9", 41, quiet=True).message
      (True, 'got 41, expected the answer to everything')
    """

    def register(checker: Callable[..., str]) -> Callable[..., str]:
        if exercise_id in _REGISTRY and _REGISTRY[exercise_id][0].__qualname__ != checker.__qualname__:
            raise ValueError(f"exercise {exercise_id!r} is registered twice")
        _REGISTRY[exercise_id] = (checker, title)
        return checker

    return register


def exercises() -> dict[str, str]:
    """Every registered exercise id with its title (in the checks' language), in order.

    Example:
      >>> exercises()["00.1"]
      'Write double(x)'
    """
    return {k: tr(_REGISTRY[k][1]) for k in sorted(_REGISTRY)}


def check(exercise_id: str, answer: Any, *, quiet: bool = False, **context: Any) -> Result:
    """Check ``answer`` to exercise ``exercise_id``; print ``✓``/``✗`` with a message.

    The message is in the language of :func:`lstmjax.course.language` (``LSTMJAX_LANGUAGE``, which
    a translated notebook sets in its first cell).

    Args:
      exercise_id: ``"NN.k"``, as the tutorial's exercise says.
      answer: what the exercise asks for (a value, a function, a trained state, ...).
      quiet: do not print.
      **context: extra values some exercises ask for (the tutorial says which).

    Returns:
      a :class:`Result`, truthy when the answer is right.

    Example:
      >>> check("00.1", lambda x: 2 * x, quiet=True).ok
      True
    """
    if exercise_id not in _REGISTRY:
        raise KeyError(tr("no exercise {exercise!r}; known: {known}", exercise=exercise_id,
                          known=", ".join(sorted(_REGISTRY))))
    checker, _ = _REGISTRY[exercise_id]
    try:
        result = Result(exercise_id, True, checker(answer, **context))
    except AssertionError as error:  # Wrong, or a plain assert in a checker
        result = Result(exercise_id, False, str(error) or tr("the answer is not right"))
    except Exception as error:  # the learner's code raised
        tail = "".join(traceback.format_exception_only(type(error), error)).strip()
        result = Result(exercise_id, False, tr("your code raised {error}", error=tail))
    if not quiet:
        print(f"{'✓' if result.ok else '✗'} {exercise_id}: {result.message}")
    return result
