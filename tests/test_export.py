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


# ------------------------------------------------------------------ bundles (the Hugging Face Hub's layout)


@pytest.fixture(scope="module")
def bundle(run, tmp_path_factory):
    return Predictor(run).save_pretrained(tmp_path_factory.mktemp("bundle") / "model")


def test_a_bundle_gives_the_runs_answers(run, bundle, test_texts, capsys):
    from safetensors.numpy import load_file

    assert sorted(p.name for p in bundle.iterdir()) == ["README.md", "config.json", "labels.txt", "metrics.json",
                                                        "model.safetensors", "tokenizer.json", "vocab.json"]
    weights = load_file(str(bundle / "model.safetensors"))  # names and arrays, nothing that runs
    assert weights["embedding/embedding"].shape == (len(Predictor(run).vocab), 16)
    loaded = Predictor.from_pretrained(bundle)
    assert loaded.label_names == ("neg", "pos")
    np.testing.assert_array_equal(loaded.predict_proba(test_texts), Predictor(run).predict_proba(test_texts))
    for source in (run, bundle):
        assert main(["predict", str(source), "--json", "a gorgeous, moving film"]) == 0
    first, second = capsys.readouterr().out.splitlines()
    assert first == second
    card = (bundle / "README.md").read_text()
    accuracy = json.loads((run / "metrics.json").read_text())["accuracy"]
    assert card.startswith("---\nlibrary_name: lstmjax\nlicense: cc-by-4.0\n") and f"value: {accuracy:.4f}" in card
    assert "CC BY 4.0" in card and "Bo Pang and Lillian Lee" in card and "Intended use" in card
    again = loaded.save_pretrained(bundle.parent / "again")  # a bundle saves as a bundle
    assert (again / "model.safetensors").read_bytes() == (bundle / "model.safetensors").read_bytes()


def test_a_bundle_from_the_hub(bundle, monkeypatch):
    import huggingface_hub

    asked = []

    def download(**kwargs):
        asked.append(kwargs)
        if kwargs["repo_id"] == "someone/missing":
            raise huggingface_hub.errors.RepositoryNotFoundError("404 Client Error: Repository Not Found")
        return str(bundle)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", download)
    assert Predictor.from_pretrained("someone/sentiment", revision="v1").label_names == ("neg", "pos")
    assert asked[0] == {"repo_id": "someone/sentiment", "revision": "v1", "cache_dir": None, "repo_type": "model"}
    with pytest.raises(CheckpointError, match="someone/missing: not a local folder, and the Hub did not give it"):
        Predictor.from_pretrained("someone/missing")
    with pytest.raises(CheckpointError, match="no such bundle folder"):
        Predictor.from_pretrained("./runs/typo")
    assert len(asked) == 2  # a path is never sent to the Hub

    calls = []

    class FakeApi:
        def __init__(self, token=None):
            calls.append(("token", token))

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create", repo_id, kwargs))

        def upload_folder(self, **kwargs):
            calls.append(("upload", kwargs))
            return type("Info", (), {"commit_url": "https://huggingface.co/someone/sentiment/commit/1"})()

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    from lstmjax.app.bundle import push_to_hub

    assert push_to_hub(bundle, "someone/sentiment", token="t").endswith("/commit/1")
    assert calls[1] == ("create", "someone/sentiment", {"repo_type": "model", "private": False, "exist_ok": True})
    assert calls[2][1]["folder_path"] == str(bundle) and calls[2][1]["repo_type"] == "model"
    with pytest.raises(ValueError, match="not a bundle"):
        push_to_hub(bundle.parent, "someone/sentiment")


def test_a_bundle_of_another_model_or_a_damaged_one_is_refused(run, bundle, tmp_path, capsys):
    import shutil

    from safetensors.numpy import load_file, save_file

    other = shutil.copytree(bundle, tmp_path / "other")
    weights = load_file(str(other / "model.safetensors"))
    weights["dense/kernel"] = np.zeros((32, 2), np.float32)
    save_file(weights, str(other / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"dense/kernel is float32\[32, 2\], the model needs float32\[16, 2\]"):
        Predictor(other)
    del weights["dense/kernel"]
    weights["head/kernel"] = np.zeros((16, 2), np.float32)
    save_file(weights, str(other / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing \['dense/kernel'\], unexpected \['head/kernel'\]"):
        Predictor(other)
    data = (bundle / "model.safetensors").read_bytes()
    (other / "model.safetensors").write_bytes(data[:100])
    assert main(["predict", str(other), "a film"]) == 2
    assert "model.safetensors: damaged or not a safetensors file" in capsys.readouterr().err
    assert main(["export", str(run), "--format", "hub", "--out", str(bundle)]) == 2
    assert "is not an empty folder" in capsys.readouterr().err
