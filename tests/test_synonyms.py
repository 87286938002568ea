"""The shipped English synonym table and user tables from JSON (errors name the file and the entry)."""

import json

import numpy as np
import pytest

from lstmjax.data.augment import augment_dataset, load_synonyms
from lstmjax.data.tokenizer import get_tokenizer


def test_builtin_table_is_clean():
    table = load_synonyms()
    assert table == load_synonyms("builtin") and len(table) > 100
    tok = get_tokenizer("english")
    for word, options in table.items():
        assert tok(word) == [word]  # a lower-case single token, as the tokenizer emits
        assert options and word not in options and len(set(options)) == len(options)


def test_builtin_table_states_its_source_and_licence():
    from lstmjax.data.augment import _BUILTIN_SYNONYMS

    raw = json.loads(_BUILTIN_SYNONYMS.read_text(encoding="utf-8"))
    assert "by hand" in raw["source"] and raw["licence"].startswith("Apache-2.0")


def test_user_tables_plain_or_wrapped(tmp_path):
    plain, wrapped = tmp_path / "a.json", tmp_path / "b.json"
    plain.write_text(json.dumps({"good": ["fine", "good", "fine"], "x": []}))
    wrapped.write_text(json.dumps({"source": "me", "synonyms": {"good": ["fine"]}}))
    assert load_synonyms(plain) == {"good": ["fine"]}  # self and duplicates dropped, empty entries left out
    assert load_synonyms(wrapped) == {"good": ["fine"]}


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('["good"]', "expected a JSON object"),
    ('{"good": "great"}', "entry 'good' must be a list"),
    ('{"good": ["great", 3]}', "entry 'good' must be a list"),
    ('{"": ["x"]}', "an empty word"),
])
def test_bad_tables_name_file_and_entry(tmp_path, content, message):
    path = tmp_path / "table.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        load_synonyms(path)
    assert "table.json" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_synonyms(tmp_path / "nope.json")


def test_builtin_table_drives_replacement_and_is_seeded():
    texts = ["a good film with a boring plot"] * 4
    kwargs = dict(n_aug=3, seed=5, synonyms=load_synonyms(), ops=["synonym_replacement"], alpha=0.3)
    out = augment_dataset({"text": texts, "label": [1, 0, 1, 0]}, **kwargs)
    assert out == augment_dataset({"text": texts, "label": [1, 0, 1, 0]}, **kwargs)
    copies = out["text"][4:]
    assert all(c != texts[0] for c in copies)  # a word with synonyms was replaced in every copy
    assert all(len(c.split()) == len(texts[0].split()) for c in copies)
    assert np.array_equal(out["label"][4:], np.repeat([1, 0, 1, 0], 3))
