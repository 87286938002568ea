"""A trained run, loaded back: label probabilities for texts (:class:`Predictor`) and its metrics on a split.

``lstmjax predict``, ``lstmjax explain`` and ``lstmjax evaluate`` are thin wrappers around
:class:`Predictor` and :func:`evaluate_run`.
"""

from __future__ import annotations

import os
import pathlib
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import jax
import numpy as np

from lstmjax.app import bundle, rundir, stages
from lstmjax.data import Vocab, encode_texts, load_dataset, prepare
from lstmjax.robustness import CheckedTexts, check_texts
from lstmjax.training import Checkpointer, CheckpointError

__all__ = ["Predictor", "evaluate_run", "restore_state"]


def restore_state(directory: str | os.PathLike, files: rundir.RunFiles | None = None):
    """A run directory's model state, from its last checkpoint (the best epoch's parameters when
    the run stopped early); a bundle's, from its ``model.safetensors``.

    Args:
      directory: a run directory written by :func:`lstmjax.app.run.train`, or a bundle written by
        :meth:`Predictor.save_pretrained`.
      files: its :func:`~lstmjax.app.rundir.load_run_files` (read when not given).

    Returns:
      A :class:`~lstmjax.training.TrainState` (an ensemble's, for an ensemble run).
    """
    files = files or rundir.load_run_files(directory)
    config = files.config
    model = stages.build_model(config, len(files.vocab), len(files.label_names))
    state = stages.initial_state(config, model, stages.make_optimizer(config, None), jax.random.key(0))
    if bundle.is_bundle(directory) and not (pathlib.Path(directory) / "checkpoints").exists():
        return state.replace(params=bundle.read_weights(directory, state.params))
    with Checkpointer(directory, create=False) as ckpt:  # reads only: never creates checkpoints/
        state, _, best = ckpt.restore(state)
    return state.replace(params=best) if config.patience is not None else state


def evaluate_run(directory: str | os.PathLike, *, data: str | None = None, split: str | None = None,
                 cache_dir: str | None = None) -> dict[str, Any]:
    """Evaluate a run directory's model on a split (default: its own data's test split).

    The texts are tokenised and encoded with the run's own tokenizer and vocabulary.

    Example:
      >>> import tempfile
      >>> from lstmjax import Config, train
      >>> c = Config(epochs=1, hidden=8, embed_dim=8, max_len=16, vocab_size=500, batch_size=64)
      >>> r = train(c, tempfile.mkdtemp() + "/run", cache_dir=tempfile.mkdtemp(), log=lambda *a: None)
      >>> report = evaluate_run(r.directory, split="validation")
      >>> report["split"], report["support"]
      ('validation', 1066)
    """
    directory = pathlib.Path(directory)
    files = rundir.load_run_files(directory)
    dataset = load_dataset(data or files.config.data, cache_dir=cache_dir)
    if tuple(dataset.label_names) != files.label_names:
        raise CheckpointError(f"{data or files.config.data}: labels {dataset.label_names} differ from the "
                              f"model's {files.label_names}")
    name = stages.evaluation_split(dataset.splits, split)
    prepared = prepare(dataset, files.tokenizer, vocab=files.vocab)
    state = restore_state(directory, files)
    report = stages.evaluate_state(files.config, state, prepared[name], files.label_names)
    report["split"] = name
    return report


class Predictor:
    """A trained run, loaded once, that turns texts into label probabilities.

    Attributes:
      directory: the run directory.
      files: its config, vocabulary, tokenizer and label names.
      model: the :class:`~lstmjax.TextClassifier` the config describes.
      state: the restored state (``state.params`` are the model's parameters).
      label_names: the name of each label id.

    Example:
      >>> import tempfile
      >>> from lstmjax import Config, train
      >>> c = Config(epochs=1, hidden=8, embed_dim=8, max_len=16, vocab_size=500, batch_size=64)
      >>> r = train(c, tempfile.mkdtemp() + "/run", cache_dir=tempfile.mkdtemp(), log=lambda *a: None)
      >>> p = Predictor(r.directory).predict_proba(["a gorgeous, moving film", ""])
      >>> p.shape, bool(abs(p.sum(-1) - 1).max() < 1e-5)
      ((2, 2), True)
      >>> Predictor(r.directory).check(["a moving\\x00 film"]).reports[0].issues[0]
      '1 control character(s) replaced by spaces'
    """

    def __init__(self, directory: str | os.PathLike):
        """Load a run directory (``lstmjax train``) or a bundle (:meth:`save_pretrained`)."""
        self.directory = pathlib.Path(directory)
        self.files = rundir.load_run_files(self.directory)
        self.model = stages.build_model(self.files.config, len(self.files.vocab), len(self.files.label_names))
        self.state = restore_state(self.directory, self.files)
        self.label_names = self.files.label_names
        # softmax, or the mean of the ensemble members' softmax
        self._proba = jax.jit(stages.proba_fn(self.files.config, self.state.apply_fn))
        self._stream = jax.jit(lambda params, ids, lengths, state: self.model.apply(
            {"params": params}, ids, lengths, state, method="stream"))

    @classmethod
    def from_pretrained(cls, name: str | os.PathLike, *, revision: str | None = None,
                        cache_dir: str | None = None) -> Predictor:
        """A bundle (or run directory) from a local folder, or a bundle from the Hugging Face Hub.

        Args:
          name: a folder written by :meth:`save_pretrained` (or a run directory), else a Hub
            model id (``"user/model"``), downloaded with ``huggingface_hub.snapshot_download``.
          revision: the Hub revision (branch, tag or commit; default: main).
          cache_dir: where the Hub download is cached (default: huggingface_hub's cache).

        Raises:
          CheckpointError: a local folder that is missing files, or a name that is neither a
            folder nor a model id the Hub could give.
        """
        path = pathlib.Path(name)
        if path.is_dir():
            return cls(path)
        text = str(name)
        if path.exists() or text.startswith(".") or not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", text):
            raise CheckpointError(f"{name}: no such bundle folder (a Hub model id looks like 'user/model')")
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HFValidationError

        try:
            local = snapshot_download(repo_id=text, revision=revision, cache_dir=cache_dir, repo_type="model")
        except HFValidationError as e:
            raise CheckpointError(f"{name}: not a folder, nor a Hub model id ({rundir.excerpt(str(e), 160)})") from None
        except Exception as e:  # noqa: BLE001 - offline, unknown repo, no access: huggingface_hub's many errors
            raise CheckpointError(f"{name}: not a local folder, and the Hub did not give it "
                                  f"({type(e).__name__}: {rundir.excerpt(str(e), 200)})") from None
        return cls(local)

    def save_pretrained(self, out: str | os.PathLike) -> pathlib.Path:
        """Write this model as a bundle in the Hugging Face Hub's layout (:mod:`lstmjax.app.bundle`).

        ``out`` (a new or empty folder) gets ``model.safetensors``, ``config.json``, the
        vocabulary, tokenizer and labels, the run's ``metrics.json`` and a model card
        (``README.md``). :meth:`from_pretrained` and ``lstmjax predict`` read it back.

        Example:
          >>> import tempfile
          >>> from lstmjax import Config, train
          >>> c = Config(epochs=1, hidden=8, embed_dim=8, max_len=16, vocab_size=500, batch_size=64)
          >>> r = train(c, tempfile.mkdtemp() + "/run", cache_dir=tempfile.mkdtemp(), log=lambda *a: None)
          >>> folder = Predictor(r.directory).save_pretrained(tempfile.mkdtemp() + "/bundle")
          >>> sorted(p.name for p in folder.iterdir())
          ['README.md', 'config.json', 'labels.txt', 'metrics.json', 'model.safetensors', 'tokenizer.json', 'vocab.json']
          >>> texts = ["a gorgeous, moving film", "dull"]
          >>> bool(np.abs(Predictor.from_pretrained(folder).predict_proba(texts)
          ...             - Predictor(r.directory).predict_proba(texts)).max() == 0)
          True
        """
        return bundle.write_bundle(out, self.directory, self.state.params)

    @property
    def vocab(self) -> Vocab:
        return self.files.vocab

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Texts → ``token_ids <int32>[batch, time]``, ``lengths <int32>[batch]`` (the run's tokenizer and vocabulary).

        Each text is cut to the run's ``max_len`` tokens; ``time`` is the longest kept text's
        length rounded up to a power of two (a few compiled shapes; never ``max_len`` when the
        texts are shorter).
        """
        return encode_texts(texts, self.files.tokenizer, self.vocab, self.files.config.max_len)

    def check(self, texts: Sequence[str]) -> CheckedTexts:
        """Untrusted texts checked with this run's tokenizer, vocabulary and ``max_len``
        (:func:`lstmjax.robustness.check_texts`): cleaned texts and one report each."""
        return check_texts(texts, tokenizer=self.files.tokenizer, vocab=self.vocab,
                           max_tokens=self.files.config.max_len)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """``<float32>[len(texts), num_labels]`` probabilities.

        Each text first goes through :func:`lstmjax.robustness.check_texts` (non-``str`` items
        are a ``TypeError``; control characters are removed, over-long texts cut); see
        :meth:`check` for the reports.
        """
        if isinstance(texts, str):
            raise TypeError("predict_proba takes a list of texts, not one string")
        ids, lengths = self.encode(check_texts(texts).texts)
        return np.asarray(self._proba(self.state.params, ids, lengths))

    def stream(self, chunks: Iterable[str]) -> Iterator[np.ndarray]:
        """One long text read chunk by chunk: the label probabilities after each chunk.

        The recurrent state is carried from chunk to chunk
        (:meth:`lstmjax.TextClassifier.stream`), so memory stays fixed however long the text,
        and the probabilities after the last chunk equal :meth:`predict_proba` on the whole
        text as long as that fits ``max_len`` (``predict_proba`` cuts longer texts; a stream
        does not). Each chunk is tokenised on its own: cut between words (for a subword or
        character tokenizer, at a point where it splits anyway). Not for bidirectional or
        ensemble runs.

        Args:
          chunks: the text's consecutive pieces (an empty one changes nothing).

        Yields:
          ``<float32>[num_labels]`` after each chunk.
        """
        config = self.files.config
        if config.bidirectional or config.ensemble > 1:
            raise ValueError(f"{self.directory}: stream needs a unidirectional, single-model run "
                             f"(bidirectional={config.bidirectional}, ensemble={config.ensemble})")
        if isinstance(chunks, str):
            raise TypeError("stream takes an iterable of text chunks, not one string")
        state = None
        for chunk in chunks:
            ids = self.vocab.encode(self.files.tokenizer(check_texts([chunk]).texts[0]))
            width = 8 if len(ids) <= 8 else 1 << (len(ids) - 1).bit_length()  # powers of two: few compilations
            row = np.zeros((1, width), np.int32)
            row[0, :len(ids)] = ids
            logits, state = self._stream(self.state.params, row, np.array([len(ids)], np.int32), state)
            yield np.asarray(jax.nn.softmax(logits[0]))
