"""A trained run as a file that runs without lstmjax's model code: ``jax.export`` (StableHLO) or ONNX.

:func:`export_run` writes a folder::

    model.jaxexport   the inference function, token ids + lengths → label probabilities, with the
                      trained parameters inside and the batch and time dimensions symbolic
                      (``format="stablehlo"``, the default; or model.onnx with ``format="onnx"``)
    export.json       what the file takes and returns, max_len, the label names, the versions
    vocab.json, tokenizer.json, labels.txt, config.json
                      the run's own files, to turn texts into token ids
    README.md         how to run it with jax alone

The model file needs ``jax`` and nothing else (no Python code is loaded from it: it holds StableHLO,
which XLA compiles)::

    import jax, numpy as np
    exported = jax.export.deserialize(open("model.jaxexport", "rb").read())
    probs = exported.call(token_ids, lengths)    # <int32>[b, t], <int32>[b] → <float32>[b, labels]

:class:`ExportedModel` adds the text side (the run's tokenizer and vocabulary) for
``predict_proba(texts)``, as :class:`~lstmjax.app.predictor.Predictor` does for a run directory;
``lstmjax predict`` accepts an exported folder as well.

ONNX (``pip install "lstmjax[onnx]"``: jax2onnx converts, onnxruntime runs) gives the same function
as an ONNX graph for other runtimes, the recurrence as an ONNX ``Loop``; the batch and time
dimensions stay dynamic, so any batch size and length run.

Limits: a ``jax.export`` file runs on the platform it was exported on (CPU here), and a newer jax
reads a file made by a jax up to six months older (jax's compatibility window); export again from
the run directory after upgrading beyond that. The ONNX graph is float32 inference only (opset 23
by default), checked with onnxruntime on the CPU.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import shutil
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lstmjax.app import rundir
from lstmjax.data import encode_texts
from lstmjax.training import CheckpointError

__all__ = ["ExportedModel", "export_inference", "export_onnx", "export_run", "is_exported"]

MODEL_FILES = {"stablehlo": "model.jaxexport", "onnx": "model.onnx", "hub": "model.safetensors"}
SPEC_FILE = "export.json"
FORMAT = "lstmjax-export/1"

_INPUTS = """\
Any batch size and any time length up to max_len = {max_len} (token id 0 is padding; a row's
tokens past its length are ignored). Labels, in order: {label_names}. The token ids come from the
vocabulary (`vocab.json`) and tokenizer (`tokenizer.json`) beside it; with lstmjax installed,
`lstmjax.app.export.ExportedModel(folder).predict_proba(texts)` does that part, and
`lstmjax predict FOLDER "a text"` prints the predictions.
"""

_ONNX_README = """\
# {name}: an exported lstmjax text classifier (ONNX)

`model.onnx` is the trained model's inference function as an ONNX graph (the parameters inside,
the recurrence as an ONNX `Loop`). Any ONNX runtime runs it, for example onnxruntime:

```python
import onnxruntime, numpy as np
session = onnxruntime.InferenceSession("model.onnx")
probs = session.run(None, {{"token_ids": token_ids, "lengths": lengths}})[0]
# <int32>[batch, time], <int32>[batch] -> <float32>[batch, {labels}]
```

{inputs}
Exported from `{run}` with jax {jax_version} and jax2onnx {converter_version}.
"""

_README = """\
# {name}: an exported lstmjax text classifier

`model.jaxexport` is the trained model's inference function, serialized with `jax.export`
(StableHLO, parameters included). It needs `jax` only:

```python
import jax, numpy as np
exported = jax.export.deserialize(open("model.jaxexport", "rb").read())
probs = exported.call(token_ids, lengths)  # <int32>[batch, time], <int32>[batch] -> <float32>[batch, {labels}]
```

{inputs}
Exported from `{run}` with jax {jax_version} for {platforms}.
"""


def export_inference(proba, params) -> jax.export.Exported:
    """``proba(params, ids, lengths)`` exported with ``params`` as constants and symbolic batch and time,
    for the platform JAX runs on.

    Args:
      proba: ``fn(params, token_ids <int32>[b, t], lengths <int32>[b]) -> <float32>[b, labels]``
        (:func:`lstmjax.app.stages.proba_fn`).
      params: the parameters (baked into the exported function).

    Returns:
      A ``jax.export.Exported``: ``.serialize()`` gives the bytes, ``.call(ids, lengths)`` runs it.

    Example:
      >>> import jax, numpy as np
      >>> from lstmjax import Config
      >>> from lstmjax.app import stages
      >>> c = Config(hidden=4, embed_dim=4)
      >>> model = stages.build_model(c, 20, 2)
      >>> params = model.init(jax.random.key(0), np.ones((1, 3), np.int32))["params"]
      >>> exported = export_inference(stages.proba_fn(c, model.apply), params)
      >>> back = jax.export.deserialize(exported.serialize())
      >>> ids, lengths = np.array([[3, 4, 5, 0, 0]], np.int32), np.array([3], np.int32)
      >>> bool(np.allclose(back.call(ids, lengths), stages.proba_fn(c, model.apply)(params, ids, lengths)))
      True
      >>> [str(a.shape) for a in back.in_avals]
      ['(b, t)', '(b,)']
    """
    batch, time = jax.export.symbolic_shape("b, t")
    fn = jax.jit(lambda token_ids, lengths: proba(params, token_ids, lengths))
    return jax.export.export(fn)(
        jax.ShapeDtypeStruct((batch, time), jnp.int32), jax.ShapeDtypeStruct((batch,), jnp.int32))


def export_onnx(proba, params, *, ensemble: int = 1):
    """``proba(params, ids, lengths)`` as an ONNX model (jax2onnx), parameters inside, batch and time dynamic.

    Args:
      proba: ``fn(params, token_ids <int32>[b, t], lengths <int32>[b]) -> <float32>[b, labels]`` of
        one model (``jax.nn.softmax`` of the classifier's logits).
      params: the parameters; with ``ensemble > 1``, stacked on a leading axis (the members'
        probabilities are averaged, one member after another: jax2onnx cannot batch Flax's
        embedding lookup with ``vmap``).

    Returns:
      An ``onnx.ModelProto`` with inputs ``token_ids``, ``lengths`` and output ``probabilities``.

    Example:
      >>> import jax, numpy as np, onnxruntime
      >>> from lstmjax import Config
      >>> from lstmjax.app import stages
      >>> model = stages.build_model(Config(hidden=4, embed_dim=4), 20, 2)
      >>> params = model.init(jax.random.key(0), np.ones((1, 3), np.int32))["params"]
      >>> proba = lambda params, ids, lengths: jax.nn.softmax(model.apply({"params": params}, ids, lengths))
      >>> session = onnxruntime.InferenceSession(export_onnx(proba, params).SerializeToString())
      >>> ids, lengths = np.array([[3, 4, 5, 0, 0]], np.int32), np.array([3], np.int32)
      >>> out = session.run(None, {"token_ids": ids, "lengths": lengths})[0]
      >>> bool(np.allclose(out, proba(params, ids, lengths), atol=1e-6))
      True
    """
    try:
        import jax2onnx
    except ImportError:
        raise ImportError('--format onnx needs jax2onnx and onnxruntime: pip install "lstmjax[onnx]"') from None

    def fn(token_ids, lengths):
        if ensemble == 1:
            return proba(params, token_ids, lengths)
        members = [proba(jax.tree.map(lambda p, k=k: p[k], params), token_ids, lengths) for k in range(ensemble)]
        return sum(members) / ensemble

    inputs = [jax.ShapeDtypeStruct(("batch", "time"), jnp.int32), jax.ShapeDtypeStruct(("batch",), jnp.int32)]
    serde = logging.getLogger("onnx_ir.serde")  # notes on intermediate values it leaves untyped: not errors
    level = serde.level
    serde.setLevel(logging.ERROR)
    try:
        return jax2onnx.to_onnx(fn, inputs, input_names=["token_ids", "lengths"], output_names=["probabilities"],
                                model_name="lstmjax_text_classifier")
    finally:
        serde.setLevel(level)


def export_run(run: str | os.PathLike, out: str | os.PathLike, *, format: str = "stablehlo") -> pathlib.Path:
    """Export a run directory's model to ``out`` (a new or empty folder); returns ``out``.

    Args:
      run: a run directory written by ``lstmjax train`` (its last checkpoint, or the best epoch's
        parameters when it stopped early, as ``lstmjax predict`` uses).
      out: the folder to write (see the module docstring for its files).
      format: ``"stablehlo"`` (``jax.export``, the default), ``"onnx"`` (jax2onnx), or ``"hub"``: a
        bundle in the Hugging Face Hub's layout (:meth:`~lstmjax.app.predictor.Predictor.save_pretrained`).

    Raises:
      ValueError: an unknown ``format``, or ``out`` is a file or a folder that is not empty.
      ImportError: ``format="onnx"`` without jax2onnx.
      CheckpointError: ``run`` is not a run directory, or its checkpoint does not restore.

    Example:
      >>> import tempfile
      >>> from lstmjax import Config, train
      >>> c = Config(epochs=1, hidden=8, embed_dim=8, max_len=16, vocab_size=500, batch_size=64)
      >>> r = train(c, tempfile.mkdtemp() + "/run", cache_dir=tempfile.mkdtemp(), log=lambda *a: None)
      >>> sorted(p.name for p in export_run(r.directory, tempfile.mkdtemp() + "/out").iterdir())
      ['README.md', 'config.json', 'export.json', 'labels.txt', 'model.jaxexport', 'tokenizer.json', 'vocab.json']
    """
    from lstmjax.app import stages
    from lstmjax.app.predictor import restore_state

    if format not in MODEL_FILES:
        raise ValueError(f"format {format!r}: the formats are 'stablehlo' (jax.export), 'onnx' and 'hub'")
    if format == "hub":  # the Hugging Face Hub's layout: safetensors weights, config, model card
        from lstmjax.app.predictor import Predictor

        return Predictor(run).save_pretrained(out)
    run, out = pathlib.Path(run), pathlib.Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out}: exists and is not an empty folder (export writes a new one)")
    files = rundir.load_run_files(run)
    state = restore_state(run, files)
    info = dict(name=run.resolve().name, labels=len(files.label_names), max_len=files.config.max_len,
                label_names=", ".join(files.label_names), run=run.resolve().name, jax_version=jax.__version__)
    if format == "onnx":
        from importlib.metadata import version

        one = stages.proba_fn(dataclasses.replace(files.config, ensemble=1), state.apply_fn)  # one member's softmax
        model_bytes = export_onnx(one, state.params, ensemble=files.config.ensemble).SerializeToString()
        details = {"runtime": "onnx", "converter": f"jax2onnx {version('jax2onnx')}"}
        readme = _ONNX_README.format(converter_version=version("jax2onnx"), inputs=_INPUTS.format(**info), **info)
    else:
        exported = export_inference(stages.proba_fn(files.config, state.apply_fn), state.params)
        model_bytes = exported.serialize()
        details = {"runtime": "jax.export", "platforms": list(exported.platforms),
                   "calling_convention_version": exported.calling_convention_version}
        readme = _README.format(platforms=", ".join(exported.platforms), inputs=_INPUTS.format(**info), **info)
    spec = {
        "format": FORMAT,
        "model": MODEL_FILES[format],
        **details,
        "inputs": {"token_ids": "<int32>[batch, time]", "lengths": "<int32>[batch]"},
        "output": f"<float32>[batch, {len(files.label_names)}]: label probabilities",
        "max_len": files.config.max_len,
        "label_names": list(files.label_names),
        "jax_version": jax.__version__,
        "run": run.resolve().name,
    }
    out.mkdir(parents=True, exist_ok=True)
    for name in rundir.RUN_FILES:
        shutil.copyfile(run / name, out / name)
    (out / MODEL_FILES[format]).write_bytes(model_bytes)
    (out / "README.md").write_text(readme, encoding="utf-8")
    (out / SPEC_FILE).write_text(json.dumps(spec, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def is_exported(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` is a folder written by :func:`export_run`."""
    return (pathlib.Path(directory) / SPEC_FILE).is_file()


class ExportedModel:
    """An exported folder (either format), loaded: label probabilities for texts, without lstmjax's model code.

    Attributes:
      directory: the folder.
      spec: its ``export.json``.
      files: its config, vocabulary, tokenizer and label names (as a run directory's).
      label_names: the name of each label id.

    Example:
      >>> import tempfile
      >>> from lstmjax import Config, Predictor, train
      >>> c = Config(epochs=1, hidden=8, embed_dim=8, max_len=16, vocab_size=500, batch_size=64)
      >>> r = train(c, tempfile.mkdtemp() + "/run", cache_dir=tempfile.mkdtemp(), log=lambda *a: None)
      >>> model = ExportedModel(export_run(r.directory, tempfile.mkdtemp() + "/exported"))
      >>> texts = ["a gorgeous, moving film", "dull and far too long", ""]
      >>> bool(np.abs(model.predict_proba(texts) - Predictor(r.directory).predict_proba(texts)).max() < 1e-6)
      True
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = pathlib.Path(directory)
        spec_text = rundir.read_inside(self.directory, SPEC_FILE)
        try:
            spec = json.loads(spec_text)
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{self.directory / SPEC_FILE}: not JSON ({e})") from None
        if not isinstance(spec, dict) or spec.get("format") != FORMAT:
            found = spec.get("format") if isinstance(spec, dict) else type(spec).__name__
            raise CheckpointError(f"{self.directory / SPEC_FILE}: format {found!r}, expected {FORMAT!r}")
        self.spec: dict[str, Any] = spec
        self.files = rundir.load_run_files(self.directory)  # config, tokenizer, vocabulary, labels: checked
        self.label_names = self.files.label_names
        runtime = spec.get("runtime")
        if runtime not in ("jax.export", "onnx"):
            raise CheckpointError(f"{self.directory / SPEC_FILE}: runtime {runtime!r}, expected 'jax.export' or 'onnx'")
        path = self.directory / MODEL_FILES["onnx" if runtime == "onnx" else "stablehlo"]
        try:
            model_bytes = path.read_bytes()
        except FileNotFoundError:
            raise CheckpointError(f"{path}: missing (export the run again: lstmjax export RUN --out DIR)") from None
        try:
            self._call = _onnx_call(model_bytes) if runtime == "onnx" else _jax_call(model_bytes)
            probe = self._call(np.zeros((1, 1), np.int32), np.zeros(1, np.int32))  # one empty text
        except ImportError:
            raise
        except Exception as e:  # noqa: BLE001 - a damaged file fails deep in the flatbuffer/MLIR/protobuf reader
            kind = "an ONNX" if runtime == "onnx" else "a jax.export"
            raise CheckpointError(f"{path}: damaged or not {kind} file ({type(e).__name__}: "
                                  f"{_one_line(e)})") from None
        if probe.shape != (1, len(self.label_names)):
            raise CheckpointError(f"{path}: returns {probe.shape[1:]} values per text, not probabilities for the "
                                  f"{len(self.label_names)} labels of {self.directory / 'labels.txt'}")

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Texts → ``token_ids <int32>[batch, time]``, ``lengths <int32>[batch]`` (:func:`encode_texts`)."""
        return encode_texts(texts, self.files.tokenizer, self.files.vocab, self.files.config.max_len)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """``<float32>[len(texts), num_labels]`` probabilities, as
        :meth:`~lstmjax.app.predictor.Predictor.predict_proba` gives for the run."""
        from lstmjax.robustness import check_texts

        if isinstance(texts, str):
            raise TypeError("predict_proba takes a list of texts, not one string")
        ids, lengths = self.encode(check_texts(texts).texts)
        return self._call(ids, lengths)


def _one_line(error: BaseException, limit: int = 120) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _jax_call(model_bytes: bytes):
    exported = jax.export.deserialize(bytearray(model_bytes))
    return lambda ids, lengths: np.asarray(exported.call(ids, lengths))


def _onnx_call(model_bytes: bytes):
    try:
        import onnxruntime
    except ImportError:
        raise ImportError('an ONNX export needs onnxruntime to run here: pip install "lstmjax[onnx]"') from None
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only (not the converter's unused-constant notes)
    session = onnxruntime.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    return lambda ids, lengths: session.run(None, {"token_ids": ids, "lengths": lengths})[0]
