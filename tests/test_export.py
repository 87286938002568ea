"""``lstmjax export``: a run's model as a ``jax.export`` file or an ONNX graph, checked against its :class:`Predictor`.

* a fresh Python process with ``jax`` alone (no lstmjax, Flax or Optax loaded) runs the exported
  file, and one with ``onnxruntime`` alone (no JAX) runs the ONNX graph, on token ids of the test
  split, at batch sizes and lengths they were not traced with, and get the Predictor's probabilities;
* :class:`ExportedModel` and ``lstmjax predict FOLDER`` give the Predictor's answers on every test text;
* every model the config can build exports in both formats (GRU, stacks, bidirectional, pooling, an ensemble);
* bad input: a folder that is not empty, a directory that is not a run, a damaged or foreign file.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from lstmjax import Config, Predictor, train
from lstmjax.app import stages
from lstmjax.app.cli import main
from lstmjax.app.export import ExportedModel, export_inference, export_onnx, export_run
from lstmjax.data import load_dataset
from lstmjax.training import CheckpointError


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    config = Config(epochs=1, hidden=16, embed_dim=16, max_len=48, vocab_size=2000, batch_size=64)
    return train(config, root / "run", cache_dir=str(root / "cache"), log=lambda *a, **k: None).directory


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    return export_run(run, tmp_path_factory.mktemp("exported") / "model")


@pytest.fixture(scope="module")
def exported_onnx(run, tmp_path_factory):
    pytest.importorskip("onnxruntime")
    return export_run(run, tmp_path_factory.mktemp("exported") / "onnx", format="onnx")


def _cases(ids, lengths):
    """Token ids of the test split at batch sizes and lengths no export was traced with."""
    return {"all": (ids, lengths), "one": (ids[:1], lengths[:1]),
            "odd": (ids[:37, :5], np.minimum(lengths[:37], 5)), "t1": (ids[:8, :1], np.minimum(lengths[:8], 1)),
            "empty_rows": (np.zeros((3, 7), np.int32), np.zeros(3, np.int32))}


def _run_alone(script: str, cases, tmp_path, forbidden) -> dict:
    """Run ``script`` in a fresh Python process on ``cases``; it must not load any of ``forbidden``."""
    np.savez(tmp_path / "inputs.npz", **{f"{k}_ids": v[0] for k, v in cases.items()},
             **{f"{k}_lengths": v[1] for k, v in cases.items()})
    script = textwrap.dedent(script) + textwrap.dedent(f"""
        x = np.load("inputs.npz")
        np.savez("outputs.npz", **{{k: np.asarray(call(x[k + "_ids"], x[k + "_lengths"])) for k in {list(cases)!r}}})
        print(sorted(m for m in sys.modules if m.split(".")[0] in {list(forbidden)!r}))
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == "[]", f"the exported model loaded {r.stdout}"
    return dict(np.load(tmp_path / "outputs.npz"))


@pytest.fixture(scope="module")
def test_texts(tmp_path_factory):
    return list(load_dataset("builtin", cache_dir=str(tmp_path_factory.mktemp("cache")))["test"]["text"])


def test_a_fresh_process_with_jax_alone_matches_the_predictor(run, exported, test_texts, tmp_path):
    predictor = Predictor(run)
    cases = _cases(*predictor.encode(test_texts))  # "all": <int32>[1066, 64], every test text
    got = _run_alone(f"""
        import sys
        import jax, numpy as np
        exported = jax.export.deserialize(bytearray(open({str(exported / "model.jaxexport")!r}, "rb").read()))
        call = exported.call
    """, cases, tmp_path, forbidden=("lstmjax", "flax", "optax", "orbax"))
    for name, (ids, lengths) in cases.items():
        want = np.asarray(jax.nn.softmax(predictor.model.apply({"params": predictor.state.params}, ids, lengths)))
        assert got[name].shape == (len(ids), 2)
        np.testing.assert_allclose(got[name], want, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(got["all"], predictor.predict_proba(test_texts), atol=1e-6)


def test_a_fresh_process_with_onnxruntime_alone_matches_the_predictor(run, exported_onnx, test_texts, tmp_path):
    predictor = Predictor(run)
    cases = _cases(*predictor.encode(test_texts))
    got = _run_alone(f"""
        import sys
        import numpy as np, onnxruntime
        session = onnxruntime.InferenceSession({str(exported_onnx / "model.onnx")!r})
        assert [i.name for i in session.get_inputs()] == ["token_ids", "lengths"]
        assert [str(d) for d in session.get_inputs()[0].shape] == ["batch", "time"]  # dynamic, not traced sizes
        call = lambda ids, lengths: session.run(None, {{"token_ids": ids, "lengths": lengths}})[0]
    """, cases, tmp_path, forbidden=("lstmjax", "jax", "flax"))
    for name, (ids, lengths) in cases.items():
        want = np.asarray(jax.nn.softmax(predictor.model.apply({"params": predictor.state.params}, ids, lengths)))
        np.testing.assert_allclose(got[name], want, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(ExportedModel(exported_onnx).predict_proba(test_texts),
                               predictor.predict_proba(test_texts), atol=1e-5)


def test_exported_model_and_the_cli_match_the_predictor(run, exported, test_texts, capsys):
    want = Predictor(run).predict_proba(test_texts)
    model = ExportedModel(exported)
    np.testing.assert_allclose(model.predict_proba(test_texts), want, atol=1e-6)
    assert model.label_names == ("neg", "pos") and json.loads((exported / "export.json").read_text())["max_len"] == 48
    texts = test_texts[:3] + [""]
    for source in (run, exported):
        assert main(["predict", str(source), "--json", *texts]) == 0
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [line["text"] for line in lines] == texts
        got = np.array([[line["probabilities"][n] for n in ("neg", "pos")] for line in lines])
        np.testing.assert_allclose(got, np.concatenate([want[:3], Predictor(run).predict_proba([""])]), atol=2e-6)


@pytest.mark.parametrize("options", [dict(cell="gru", layers=2, bidirectional=True), dict(cell="rnn", pooling="max"),
                                     dict(pooling="mean"), dict(ensemble=3)], ids=str)
def test_every_model_exports(options):
    config = Config(hidden=8, embed_dim=8, **options)
    model = stages.build_model(config, 40, 3)
    state = stages.initial_state(config, model, stages.make_optimizer(config, 10), jax.random.key(0))
    proba = stages.proba_fn(config, model.apply)
    calls = {"jax.export": jax.export.deserialize(export_inference(proba, state.params).serialize()).call}
    if importlib.util.find_spec("onnxruntime"):
        import onnxruntime

        one = lambda params, ids, lengths: jax.nn.softmax(model.apply({"params": params}, ids, lengths))
        session = onnxruntime.InferenceSession(
            export_onnx(one, state.params, ensemble=config.ensemble).SerializeToString())
        calls["onnx"] = lambda ids, lengths: session.run(None, {"token_ids": ids, "lengths": lengths})[0]
    rng = np.random.default_rng(0)
    for batch, time in ((1, 1), (5, 9), (16, 3)):
        ids = rng.integers(2, 40, (batch, time)).astype(np.int32)
        lengths = rng.integers(0, time + 1, batch).astype(np.int32)
        for name, call in calls.items():
            np.testing.assert_allclose(call(ids, lengths), proba(state.params, ids, lengths), atol=1e-5,
                                       err_msg=f"{name}, batch {batch}, time {time}")


def test_bad_input_is_a_clear_error(run, exported, exported_onnx, tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    assert main(["export", str(run), "--out", str(tmp_path / "full")]) == 2
    assert "is not an empty folder" in capsys.readouterr().err
    assert (tmp_path / "full" / "notes.txt").read_text() == "mine"
    assert main(["export", str(tmp_path / "full"), "--out", str(tmp_path / "new")]) == 2
    assert "config.json" in capsys.readouterr().err and not (tmp_path / "new").exists()
    with pytest.raises(ValueError, match="the formats are 'stablehlo'"):
        export_run(run, tmp_path / "tflite", format="tflite")

    def copy(name, source=exported):
        import shutil

        return shutil.copytree(source, tmp_path / name)

    for name, source, kind in (("model.jaxexport", exported, "a jax.export"), ("model.onnx", exported_onnx, "an ONNX")):
        damaged = copy(f"damaged-{name}", source)
        data = (damaged / name).read_bytes()
        (damaged / name).write_bytes(data[: len(data) // 3])
        with pytest.raises(CheckpointError, match=f"{name}: damaged or not {kind} file"):
            ExportedModel(damaged)
    missing = copy("missing")
    (missing / "model.jaxexport").unlink()
    assert main(["predict", str(missing), "a film"]) == 2
    assert "model.jaxexport: missing" in capsys.readouterr().err
    foreign = copy("foreign")
    (foreign / "export.json").write_text(json.dumps({"format": "something-else/9"}))
    with pytest.raises(CheckpointError, match="format 'something-else/9', expected 'lstmjax-export/1'"):
        ExportedModel(foreign)
