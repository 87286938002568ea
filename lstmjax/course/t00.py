"""Tutorial 00: the example exercise that shows how checking works."""

from lstmjax.course._check import Wrong, exercise
from lstmjax.course._i18n import tr


@exercise("00.1", "Write double(x)")
def _double(answer):
    for x in (0, 1, -3.5, 1e6):
        got = answer(x)
        if got != 2 * x:
            raise Wrong(tr("double({x}) returned {got}, expected {want}.", x=x, got=got, want=2 * x))
    return tr("doubles 0, 1, -3.5 and 1e6 correctly.")
