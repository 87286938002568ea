"""``lstmjax train --model ...``: each architecture trains one tiny epoch on the built-in data, and
``evaluate``, ``predict`` and ``explain`` rebuild it from the run's config; the ``Config`` fields
behind ``--model`` and their errors."""

from __future__ import annotations

import json

import pytest

from lstmjax import Config
from lstmjax.app.cli import main
from lstmjax.app.config import ConfigError

TINY = ["--epochs", "1", "--embed-dim", "8", "--hidden", "8", "--max-len", "16", "--vocab-size", "500",
        "--batch-size", "256"]
MODELS = {
    "cnn": ["--model", "cnn", "--cnn-widths", "2,3", "--cnn-filters", "8", "--parallel", "pmap", "--devices", "2"],
    "transformer": ["--model", "transformer", "--heads", "2", "--ff-size", "16", "--layers", "1", "--parallel",
                    "mesh", "--devices", "2"],
    "gru-attention": ["--model", "gru", "--pooling", "attention", "--parallel", "none"],
}


@pytest.fixture(scope="module", params=list(MODELS))
def run_dir(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param) / "run"
    cache = tmp_path_factory.mktemp("cache")
    assert main(["train", *TINY, *MODELS[request.param], "--out", str(out), "--cache-dir", str(cache)]) == 0
    return out


def test_train_evaluate_predict_explain(run_dir, capsys):
    config = Config.from_json((run_dir / "config.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["support"] == 1066 and 0.0 <= metrics["accuracy"] <= 1.0
    assert main(["evaluate", str(run_dir)]) == 0
    accuracy_line = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("accuracy"))
    assert f"{metrics['accuracy']:.4f}" in accuracy_line
    assert main(["predict", str(run_dir), "--json", "a gorgeous film", ""]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2 and all(abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in lines)
    assert main(["explain", str(run_dir), "a dull , lifeless mess"]) == 0
    assert "dull" in capsys.readouterr().out
    if config.model != "gru":
        from lstmjax import Predictor

        with pytest.raises(ValueError, match=f"model={config.model}"):
            next(Predictor(run_dir).stream(["a dull"]))


def test_model_and_cell_agree():
    assert Config(cell="gru").model == "gru" and Config(model="rnn").cell == "rnn"
    assert Config.from_json(Config(model="gru").to_json()) == Config(cell="gru")
    old = json.loads(Config().to_json())  # a run saved before --model: its cell decides
    del old["model"], old["cnn_widths"]
    assert Config.from_json(json.dumps({**old, "cell": "gru"})).model == "gru"
    assert Config.from_json(Config(model="cnn", cnn_widths=(2, 5)).to_json()).cnn_widths == (2, 5)


@pytest.mark.parametrize("changes, field, message", [
    ({"model": "gru", "cell": "rnn"}, "model", "model 'gru' and cell 'rnn' disagree"),
    ({"model": "cnn", "cell": "gru"}, "cell", "cell 'gru' applies to recurrent models, not model 'cnn'"),
    ({"model": "cnn", "pooling": "mean"}, "pooling", "pooling 'mean' does not apply to model 'cnn'"),
    ({"model": "transformer", "pooling": "last"}, "pooling", "pooling 'last' does not apply to model 'transformer'"),
    ({"pooling": "cls"}, "pooling", "pooling 'cls' does not apply to model 'lstm'"),
    ({"model": "transformer", "bidirectional": True}, "bidirectional", "bidirectional applies to recurrent models"),
    ({"model": "cnn", "dropout": 0.5}, "dropout", "not model 'cnn'"),
    ({"model": "cnn", "cnn_widths": (3, 0)}, "cnn_widths", "cnn_widths must be one or more integers >= 1; got (3, 0)"),
    ({"model": "transformer", "heads": 3}, "heads", "heads (3) must divide embed_dim (128)"),
    ({"model": "bert"}, "model", "model must be one of lstm, gru, rnn, cnn, transformer; got 'bert'"),
])
def test_bad_model_options_name_the_field(changes, field, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        Config(**changes)
    assert error.value.field == field


def test_cli_errors_are_messages(capsys):
    with pytest.raises(SystemExit):  # argparse: usage and status 2
        main(["train", "--cnn-widths", "3,x"])
    assert "expected comma-separated positive integers" in capsys.readouterr().err
    assert main(["train", "--model", "cnn", "--pooling", "cls"]) == 2
    assert "pooling 'cls' does not apply to model 'cnn'" in capsys.readouterr().err
