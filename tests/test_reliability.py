"""Issue #15: every promise of the README's "Promises" section, each numbered case of the issue
reproduced and now answered as promised: a message and exit 2 (never a traceback), nothing lost,
no silent NaN or wrap-around, and the same model on any topology.

A tiny dataset (words that give the label away) keeps each training to seconds.
"""

import errno
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstmjax.app.cli import main
from lstmjax.app.config import Config
from lstmjax.app.predictor import Predictor, restore_state
from lstmjax.data import DataError, DataWarning, batches, load_dataset
from lstmjax.data.loading import read_label_names

POSITIVE, NEGATIVE, FILLER = ["good", "great", "fine", "lovely"], ["bad", "dull", "awful", "poor"], \
    ["film", "movie", "the", "a", "plot", "story"]
# 96 training rows, batch 8: 12 steps an epoch; checkpoints every 5 steps and after each epoch.
OPTIONS = ["--epochs", "2", "--hidden", "4", "--embed-dim", "4", "--max-len", "8", "--vocab-size", "40",
           "--batch-size", "8", "--save-every", "5", "--embed-dropout", "0.1", "--parallel", "none"]


def _write_split(path: pathlib.Path, n: int, seed: int, classes=(0, 1)) -> None:
    rng = np.random.default_rng(seed)
    rows = ["text,label"]
    for i in range(n):
        label = classes[i % len(classes)]
        words = list(rng.choice(FILLER, rng.integers(2, 7))) + [rng.choice((NEGATIVE, POSITIVE)[label])]
        rows.append(f"{' '.join(rng.permutation(words))},{label}")
    path.write_text("\n".join(rows) + "\n")


def make_data(folder: pathlib.Path, train_classes=(0, 1), test_classes=(0, 1)) -> pathlib.Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "labels.txt").write_text("neg\npos\n")
    _write_split(folder / "train.csv", 96, 0, train_classes)
    _write_split(folder / "validation.csv", 24, 1)
    _write_split(folder / "test.csv", 24, 2, test_classes)
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("data") / "tiny")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def trained(tiny, cache, tmp_path_factory):
    """An uninterrupted run, trained with --data given relative to the working folder."""
    out = tmp_path_factory.mktemp("runs") / "run"
    here = os.getcwd()
    os.chdir(tiny.parent)
    try:
        assert main(["train", *OPTIONS, "--data", "tiny", "--out", str(out), "--cache-dir", cache]) == 0
    finally:
        os.chdir(here)
    return out


def train_args(tiny, cache, out, *extra):
    return ["train", *OPTIONS, "--data", str(tiny), "--out", str(out), "--cache-dir", cache, *extra]


def copy_run(run: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
    target = tmp_path / "copy"
    shutil.copytree(run, target, symlinks=True)
    return target


def steps(run: pathlib.Path) -> list[int]:
    return sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())


def params(run: pathlib.Path):
    return jax.device_get(restore_state(run).params)


def no_traceback(err: str) -> None:
    assert "Traceback" not in err and "Event loop is closed" not in err, err[-3000:]


# --------------------------------------------------------------------------------------------- 1. damaged checkpoints


def _damage(step_dir: pathlib.Path, how: str) -> None:
    state = step_dir / "state"
    values = [*(state / "d").iterdir(), *(state / "ocdbt.process_0" / "d").iterdir()]  # the value files
    if how == "truncate":
        for f in values:
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    elif how == "flip":
        for f in values:
            data = bytearray(f.read_bytes())
            data[len(data) // 2] ^= 0x10
            f.write_bytes(bytes(data))
    elif how == "metadata":
        (state / "_METADATA").write_text("{garbage")
    elif how == "manifest":
        (state / "manifest.ocdbt").unlink()


def test_1_damaged_latest_checkpoint_falls_back_to_the_newest_intact_one(trained, tiny, cache, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    older, latest = steps(run)[-2:]
    _damage(run / "checkpoints" / str(latest), "truncate")
    assert main(["predict", str(run), "a good film"]) == 0
    err = capsys.readouterr().err
    assert f"checkpoint {latest}" in err and "damaged" in err and f"restored checkpoint {older}" in err
    no_traceback(err)
    assert main(["evaluate", str(run)]) == 0
    assert f"restored checkpoint {older}" in capsys.readouterr().err
    # --resume: the damaged one is set aside (not deleted), and the run goes on from the intact one
    assert main(train_args(tiny, cache, run, "--resume", "--epochs", "3")) == 0
    out = capsys.readouterr()
    assert (run / "checkpoints.damaged" / str(latest) / "state").is_dir() and "moved to" in out.out
    assert len(json.loads((run / "metrics.json").read_text())["history"]["loss"]) == 3


@pytest.mark.parametrize("how", ["truncate", "flip", "metadata", "manifest"])
def test_1_every_damage_is_named_exit_2(trained, tmp_path, capsys, how):
    run = copy_run(trained, tmp_path)
    for step in steps(run):
        _damage(run / "checkpoints" / str(step), how)
    assert main(["predict", str(run), "a good film"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lstmjax: error: ") and "no checkpoint could be restored" in err
    assert all(f"{step}: " in err for step in steps(run)) and len(err) < 2000
    no_traceback(err)


def test_1_no_traceback_from_orbax_threads_at_exit(trained, tmp_path):
    """The same in a fresh interpreter: the message alone, none of the failed reads' asyncio reports
    ("Future exception was never retrieved", "Event loop is closed") that truncated or flipped value
    files set off in Orbax's threads."""
    run = copy_run(trained, tmp_path)
    *older, latest = steps(run)
    _damage(run / "checkpoints" / str(latest), "truncate")
    for step in older:
        _damage(run / "checkpoints" / str(step), "flip")
    r = subprocess.run([sys.executable, "-m", "lstmjax", "predict", str(run), "a good film"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.startswith("lstmjax: error: ")
    no_traceback(r.stderr)
    assert "never retrieved" not in r.stderr and r.stderr.count("\n") == 1, r.stderr[-3000:]


# --------------------------------------------------------------------------------------------- 2. long CSV fields


def test_2_a_text_over_128_kib_and_a_5_mb_line(tmp_path):
    folder = tmp_path / "long"
    folder.mkdir()
    (folder / "labels.txt").write_text("neg\npos\n")
    (folder / "train.csv").write_text('text,label\nfine,1\n"' + "x" * 200_000 + '",0\nok,1\n,1\n')
    with pytest.raises(DataError, match=r"train.csv, line 5: missing text"):
        load_dataset(folder, splits=["train"], cache_dir=tmp_path / "c")
    (folder / "train.csv").write_text("text,label\nfine,1\n" + "y" * 5_000_000 + "\n")
    with pytest.raises(DataError, match=r"train.csv, line 3: missing label"):
        load_dataset(folder, splits=["train"], cache_dir=tmp_path / "c")


# --------------------------------------------------------------------------------------------- 3. runs that fail early


@pytest.mark.parametrize("argv,message", [(["--seed", "-5"], "--seed must be an integer in [0, 4294967295]; got -5"),
                                          (["--cv", "1000"], "--cv 1000: more folds than the 96 training examples")])
def test_3_options_are_checked_before_the_directory_is_made(tiny, cache, tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    assert main(train_args(tiny, cache, out, *argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith("lstmjax: error: ") and message in err, err
    assert not out.exists()


def test_3_a_run_that_failed_before_its_first_checkpoint_starts_again(tiny, cache, tmp_path, monkeypatch, capsys):
    from lstmjax.app import stages
    from lstmjax.training import TrainingError

    def diverge(*args, **kwargs):
        raise TrainingError("the training loss became nan in epoch 1 (step 1)")

    out = tmp_path / "run"
    monkeypatch.setattr(stages, "fit", diverge)
    assert main(train_args(tiny, cache, out, "--epochs", "1")) == 1
    assert (out / "config.json").is_file() and steps(out) == []
    logged = []
    run = stages.open_run(Config(), out, resume=True, log=logged.append)
    assert not run.resume and "starting from the beginning" in logged[0]
    monkeypatch.undo()
    assert main(train_args(tiny, cache, out, "--epochs", "1")) == 0  # the same command again: it runs
    assert main(train_args(tiny, cache, tmp_path / "empty", "--resume")) == 2
    assert "nothing to resume" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------- 4. bad seeds, links, full disks


def test_4_a_huge_seed_is_a_message(capsys):
    assert main(["train", "--seed", "99999999999999999999999"]) == 2
    assert "--seed must be an integer in [0, 4294967295]" in capsys.readouterr().err


def test_4_checkpoint_links(trained, tiny, cache, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    shutil.rmtree(run / "checkpoints")
    (run / "checkpoints").symlink_to(tmp_path / "gone")
    assert main(["predict", str(run), "good"]) == 2
    assert main(train_args(tiny, cache, run, "--resume")) == 2
    err = capsys.readouterr().err
    assert err.count("is a symbolic link to") == 2 and "does not exist" in err
    no_traceback(err)
    run2 = copy_run(trained, tmp_path / "b")
    older, latest = steps(run2)[-2:]
    shutil.move(run2 / "checkpoints" / str(latest), tmp_path / "elsewhere")
    (run2 / "checkpoints" / str(latest)).symlink_to(tmp_path / "elsewhere")
    assert main(["predict", str(run2), "good"]) == 0
    err = capsys.readouterr().err
    assert f"checkpoint {latest}" in err and "symbolic link" in err and f"restored checkpoint {older}" in err


def test_4_disk_full_while_saving_loses_nothing(trained, tiny, cache, tmp_path, monkeypatch, capsys):
    """ENOSPC on the third save: exit 2 with the reason; --resume then ends where an uninterrupted run ends."""
    import orbax.checkpoint as ocp

    real, calls = ocp.CheckpointManager.save, []

    def save(self, step, *args, **kwargs):
        calls.append(step)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.directory / str(step)))
        return real(self, step, *args, **kwargs)

    out = tmp_path / "run"
    monkeypatch.setattr(ocp.CheckpointManager, "save", save)
    assert main(train_args(tiny, cache, out)) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "--resume" in err
    no_traceback(err)
    monkeypatch.undo()
    assert steps(out) == calls[:2]
    assert main(train_args(tiny, cache, out, "--resume")) == 0
    jax.tree.map(np.testing.assert_array_equal, params(out), params(trained))


# --------------------------------------------------------------------------------------------- 5. data names


def test_5_names_that_look_like_paths_fail_at_once(tmp_path, monkeypatch):
    import datasets

    def hub(*args, **kwargs):
        raise AssertionError("went to the hub")

    monkeypatch.setattr(datasets, "load_dataset", hub)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "sst2").mkdir(parents=True)
    for name, message in [("./missing", "missing: no such folder"), ("data/sts2", "no such folder (did you mean"),
                          ("/no/such/place", "no such folder"), ("missing.csv", "missing.csv: no such file")]:
        with pytest.raises(DataError, match=re.escape(message)):
            load_dataset(name)
    import socket

    def offline(*args, **kwargs):
        raise OSError(errno.ENETUNREACH, "Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", offline)
    with pytest.raises(DataError, match="no such local file or folder.*hub .* cannot be reached"):
        load_dataset("sts2_typo")


def test_5_the_run_stores_what_the_user_meant(trained, tiny, tmp_path, monkeypatch, capsys):
    assert json.loads((trained / "config.json").read_text())["data"] == str(tiny.resolve())
    monkeypatch.chdir(tmp_path)  # another folder: evaluate still finds the data
    assert main(["evaluate", str(trained)]) == 0


# --------------------------------------------------------------------------------------------- 6. resume changes


def test_6_resume_refuses_a_different_run_unless_asked(trained, tiny, cache, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    assert main(train_args(tiny, cache, run, "--resume", "--lr", "0.01")) == 2
    err = capsys.readouterr().err
    assert "different run: lr: saved 0.001, given 0.01" in err and "--allow-change" in err
    changed = make_data(tmp_path / "changed")
    (changed / "train.csv").write_text((changed / "train.csv").read_text().replace("good", "fine", 1))
    assert main(train_args(changed, cache, run, "--resume")) == 2
    err = capsys.readouterr().err
    assert "data: saved" in err and "split 'train' differs" in err
    assert main(train_args(tiny, cache, run, "--resume", "--epochs", "3", "--lr", "0.0001", "--allow-change", "lr")) == 0
    changes = json.loads((run / "changes.json").read_text())
    assert [(c["field"], c["saved"], c["given"]) for c in changes] == [("lr", 0.001, 0.0001)]
    assert json.loads((run / "config.json").read_text())["lr"] == 0.0001
    assert json.loads((run / "metrics.json").read_text())["changes"] == changes


# --------------------------------------------------------------------------------------------- 7. token ids and lengths


def test_7_token_ids_outside_the_vocabulary():
    from lstmjax import TextClassifier
    from lstmjax.nn import checked

    model = TextClassifier(10, 2, embed_dim=4, hidden_size=4)
    variables = model.init(jax.random.key(0), jnp.ones((1, 3), jnp.int32))
    for bad in (12, -1):
        ids = jnp.array([[3, bad, 0]])
        with pytest.raises(ValueError, match=f"token_ids\\[0, 1\\] = {bad} is outside the vocabulary"):
            model.apply(variables, ids)
        assert np.isnan(np.asarray(jax.jit(model.apply)(variables, ids))).all()  # documented: NaN, never a wrap
        with pytest.raises(Exception, match="token id is outside the vocabulary"):
            checked(jax.jit(model.clone(check_inputs=True).apply))(variables, ids)
    data = {"token_ids": [[2, 3], [4, 10]], "label": [0, 1]}
    with pytest.raises(DataError, match="row 1: token id 10 is outside the model's vocabulary"):
        list(batches(data, 2, vocab_size=10))
    from lstmjax import create_train_state, fit, make_optimizer

    state = create_train_state(model, jax.random.key(0), make_optimizer())
    with pytest.raises(DataError, match="row 1: token id 10"):
        fit(state, data, epochs=1, batch_size=2)


def test_7_lengths_under_jit_are_clipped_or_checked():
    from lstmjax import GRU, LSTM
    from lstmjax.nn import checked

    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 4, 2)), jnp.float32)
    for layer in (LSTM(4, bidirectional=True), GRU(4, bidirectional=True)):
        variables = layer.init(jax.random.key(0), x, jnp.array([4, 2, 1]))
        run = jax.jit(layer.apply)
        got, _ = run(variables, x, jnp.array([9, -3, 2]))
        want, _ = run(variables, x, jnp.array([4, 0, 2]))
        assert np.isfinite(np.asarray(got)).all()
        np.testing.assert_array_equal(got, want)
        with pytest.raises(ValueError, match=r"lengths\[0\] = 9 is outside \[0, time=4\]"):
            layer.apply(variables, x, jnp.array([9, 1, 2]))
        with pytest.raises(Exception, match="a length is outside"):
            checked(jax.jit(layer.clone(check_inputs=True).apply))(variables, x, jnp.array([9, 1, 2]))


# --------------------------------------------------------------------------------------------- 8. labels and vocabulary


def test_8_labels_txt(tmp_path):
    (tmp_path / "labels.txt").write_bytes("\ufeffneg\npos\n".encode())
    assert read_label_names(tmp_path / "labels.txt") == ("neg", "pos")


def _loaded(folder, cache, **config):
    from lstmjax.app import stages

    run = stages.open_run(Config(data=str(folder), parallel="none", **config), folder.parent / "run", cache_dir=cache)
    return run, stages.load_data(run)


def test_8_one_label_and_lopsided_splits(tmp_path, cache):
    one = make_data(tmp_path / "one")
    (one / "labels.txt").write_text("neg\n")
    for split in ("train", "validation", "test"):
        (one / f"{split}.csv").write_text("text,label\na film,0\n")
    with pytest.raises(ValueError, match="1 label name.*at least 2"):
        _loaded(one, cache)
    with pytest.warns(DataWarning, match="the training split holds one class only"):
        _loaded(make_data(tmp_path / "a", train_classes=(1,)), cache)
    with pytest.warns(DataWarning, match="the test split holds label\\(s\\) the training split never shows: 'neg'"):
        _loaded(make_data(tmp_path / "b", train_classes=(1,), test_classes=(0, 1)), cache)


def test_8_a_vocabulary_of_nothing_warns(tiny, cache, tmp_path):
    from lstmjax.app import stages

    run, (data, _, _) = _loaded(tiny, cache, min_freq=100000)
    with pytest.warns(DataWarning, match="only PAD and UNK"):
        stages.prepare_data(run, data)


def test_8_malformed_json_lines_name_file_and_line(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"text": "a", "label": 0}\n{"text": "b", "label": 1}\n{"text": "c", "label": \n')
    with pytest.raises(DataError, match=r"train.jsonl, line 3: not valid JSON"):
        load_dataset(path, cache_dir=tmp_path / "c")


# --------------------------------------------------------------------------------------------- 9. minor


def test_9_predict_writes_nothing_and_escapes_terminal_codes(trained, tmp_path, capsys):
    assert main(["predict", str(trained), "\x1b[31mred\x1b[0m and good"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b[31mred" in out
    run = copy_run(trained, tmp_path)
    shutil.rmtree(run / "checkpoints")
    assert main(["predict", str(run), "good"]) == 2
    assert "no checkpoints" in capsys.readouterr().err and not (run / "checkpoints").exists()


def test_9_demo_vocab_and_a_folder_named_train_csv(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--vocab", "2"])
    assert exit_.value.code == 2 and "expected an integer >= 3, got 2" in capsys.readouterr().err
    folder = make_data(tmp_path / "d")
    (folder / "train.csv").unlink()
    (folder / "train.csv").mkdir()
    with pytest.raises(DataError, match="train.csv: a folder, not a CSV file"):
        load_dataset(folder, cache_dir=tmp_path / "c")


def test_9_a_huge_max_len_pads_only_what_the_texts_need(trained, tmp_path):
    run = copy_run(trained, tmp_path)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "max_len": 10**9}))
    ids, lengths = Predictor(run).encode(["a good film", "bad"])
    assert ids.shape == (2, 4) and lengths.tolist() == [3, 1]


# --------------------------------------------------------------------------------------------- 10. crafted run directories


def test_10_files_of_a_run_stay_inside_it(trained, tmp_path, capsys):
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-LINE\n" * 3)
    run = copy_run(trained, tmp_path)
    (run / "labels.txt").unlink()
    (run / "labels.txt").symlink_to(secret)
    assert main(["predict", str(run), "good"]) == 2
    err = capsys.readouterr().err
    assert "symbolic link out of the run directory" in err and "SECRET" not in err
    run2 = copy_run(trained, tmp_path / "b")
    config = json.loads((run2 / "config.json").read_text())
    (run2 / "config.json").write_text(json.dumps({**config, "x" * 5000: 1}))
    assert main(["predict", str(run2), "good"]) == 2
    err = capsys.readouterr().err
    assert "unknown config field" in err and len(err) < 600


# --------------------------------------------------------------------------------------------- the same model anywhere


@pytest.mark.parametrize("pad_to", [1, 4])
def test_global_batches_cut_into_parts_are_the_global_batches(pad_to):
    rng = np.random.default_rng(0)
    data = {"token_ids": [list(rng.integers(2, 30, rng.integers(1, 20))) for _ in range(103)],
            "label": list(rng.integers(0, 3, 103))}
    kwargs = dict(shuffle=True, seed=3, epoch=1, sort_window=2, pad_to=pad_to)
    whole = list(batches(data, 30, shuffle=True, seed=3, epoch=1, sort_window=2))
    for count in (2, 4) if pad_to == 4 else (2, 3):
        parts = [list(batches(data, 30, part=(i, count), **kwargs)) for i in range(count)]
        for b, pieces in enumerate(zip(*parts)):
            for key in ("token_ids", "lengths", "labels", "mask"):
                joined = np.concatenate([p[key] for p in pieces])
                want = whole[b][key]
                if pad_to > 1:
                    assert len(joined) == 32  # 30 rows and 2 filler rows: a multiple of the 4 devices
                    want = np.concatenate([want, np.zeros((2, *want.shape[1:]), want.dtype)])
                np.testing.assert_array_equal(joined, want)
    later = list(batches(data, 30, start=2, shuffle=True, seed=3, epoch=1, sort_window=2))
    assert len(later) == len(whole) - 2
    for a, b in zip(later, whole[2:]):
        np.testing.assert_array_equal(a["token_ids"], b["token_ids"])


def test_killed_after_a_save_every_checkpoint_resumes_to_the_same_parameters(trained, tiny, cache, tmp_path):
    """SIGKILL once a mid-epoch checkpoint exists; --resume ends bit for bit where an uninterrupted run ends."""
    out = tmp_path / "run"
    args = train_args(tiny, cache, out)
    child = subprocess.Popen([sys.executable, "-m", "lstmjax", *args], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600
        while not (out / "checkpoints" / "5").is_dir() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL, child.stderr.read()[-3000:]
    assert not (out / "metrics.json").exists() and 5 in steps(out)
    assert main([*args, "--resume"]) == 0
    jax.tree.map(np.testing.assert_array_equal, params(out), params(trained))
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert history["loss"] == json.loads((trained / "metrics.json").read_text())["history"]["loss"]


@pytest.mark.slow
def test_local_processes_train_the_model_one_process_trains(trained, tiny, cache, tmp_path):
    """``--local-processes 2`` (one device each) and one process: the same parameters to float rounding."""
    out = tmp_path / "two"
    r = subprocess.run([sys.executable, "-m", "lstmjax", *train_args(tiny, cache, out, "--parallel", "mesh",
                                                                     "--local-processes", "2")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["devices"] == 2
    one, two = params(trained), params(out)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), one, two)
    reference = json.loads((trained / "metrics.json").read_text())
    np.testing.assert_allclose(metrics["history"]["loss"], reference["history"]["loss"], rtol=1e-5)
