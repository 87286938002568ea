"""The public API: every name in ``lstmjax.__all__`` exists and documents itself with an example."""

import inspect

import pytest

import lstmjax

PUBLIC = [n for n in lstmjax.__all__ if not inspect.ismodule(getattr(lstmjax, n))]


def test_all_names_exist():
    assert sorted(set(lstmjax.__all__)) == sorted(lstmjax.__all__)
    assert [n for n in lstmjax.__all__ if not hasattr(lstmjax, n)] == []


@pytest.mark.parametrize("name", PUBLIC)
def test_documented_with_example(name):
    obj = getattr(lstmjax, name)
    doc = inspect.getdoc(obj)
    assert doc, f"lstmjax.{name} has no docstring"
    if not (inspect.isclass(obj) and issubclass(obj, (Exception, Warning))) and callable(obj):
        assert ">>>" in doc, f"lstmjax.{name} has no runnable example in its docstring"
