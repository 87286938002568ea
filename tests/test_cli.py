"""The ``lstmjax`` command: the main job end to end, and user errors as messages, not tracebacks."""

import io
import json
import os
import subprocess
import sys

import pytest

from lstmjax.app.cli import main

SMALL = ["--epochs", "1", "--hidden", "8", "--embed-dim", "8", "--max-len", "24", "--vocab-size", "2000",
         "--batch-size", "64"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    cache = tmp_path_factory.mktemp("cache")
    assert main(["train", *SMALL, "--out", str(out), "--cache-dir", str(cache)]) == 0
    return out


def test_train_writes_the_run(run_dir, capsys):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("accuracy", "precision", "recall", "f1", "history", "confusion_matrix", "per_class"):
        assert key in metrics
    assert metrics["split"] == "test" and metrics["support"] == 1066
    assert sum(map(sum, metrics["confusion_matrix"])) == 1066
    assert len(metrics["history"]["loss"]) == 1
    assert metrics["accuracy"] > 0.55  # one epoch of a tiny model on Rotten Tomatoes
    assert (run_dir / "history.png").stat().st_size > 1000
    for name in ("config.json", "vocab.json", "tokenizer.json", "labels.txt"):
        assert (run_dir / name).is_file()


def test_evaluate_reproduces_the_test_metrics(run_dir, capsys):
    assert main(["evaluate", str(run_dir)]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((run_dir / "metrics.json").read_text())
    accuracy_line = next(line for line in out.splitlines() if line.strip().startswith("accuracy"))
    assert f"{metrics['accuracy']:.4f}" in accuracy_line and f"loss {metrics['loss']:.4f}" in accuracy_line


def test_predict_arguments_and_stdin(run_dir, capsys, monkeypatch):
    assert main(["predict", str(run_dir), "--json", "a gorgeous film", "a dull mess"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in lines] == ["a gorgeous film", "a dull mess"]
    for r in lines:
        assert set(r["probabilities"]) == {"neg", "pos"}
        assert abs(sum(r["probabilities"].values()) - 1) < 1e-4
    monkeypatch.setattr(sys, "stdin", io.StringIO("first line\nsecond line\n"))
    assert main(["predict", str(run_dir)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_resume_continues_and_checks_config(run_dir, capsys):
    assert main(["train", *SMALL[2:], "--epochs", "2", "--out", str(run_dir), "--resume"]) == 0
    assert len(json.loads((run_dir / "metrics.json").read_text())["history"]["loss"]) == 2
    assert main(["train", *SMALL[2:], "--hidden", "16", "--out", str(run_dir), "--resume"]) == 2
    assert "hidden: saved 8, given 16" in capsys.readouterr().err
    assert main(["train", *SMALL, "--out", str(run_dir)]) == 2
    assert "already holds a run" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["train", "--lr", "-1"], "lr must be a positive number"),
        (["train", "--weight-decay", "0.1"], "--weight-decay applies to the adamw optimizer"),
        (["train", "--resume"], "--resume needs --out"),
        (["evaluate", "/nonexistent/run"], "no such run directory"),
        (["predict", "/nonexistent/run", "text"], "no such run directory"),
    ],
)
def test_user_errors_are_messages(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("lstmjax: error: ") and message in err


def test_empty_dataset(tmp_path, capsys):
    d = tmp_path / "empty"
    d.mkdir()
    (d / "labels.txt").write_text("neg\npos\n")
    for split in ("train", "validation", "test"):
        (d / f"{split}.csv").write_text("text,label\n")
    assert main(["train", "--data", str(d), "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "c")]) == 2
    assert "empty" in capsys.readouterr().err


def test_training_failure_exit_status(monkeypatch, capsys):
    from lstmjax.app import run
    from lstmjax.training.loop import TrainingError

    def diverge(*args, **kwargs):
        raise TrainingError("the training loss became nan in epoch 1 (step 3)")

    monkeypatch.setattr(run, "train", diverge)
    assert main(["train"]) == 1
    assert "training failed: the training loss became nan" in capsys.readouterr().err


def test_bad_option_and_module_entry_point():
    """argparse errors exit 2 with usage; ``python -m lstmjax`` is the same command; no traceback."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    r = subprocess.run([sys.executable, "-m", "lstmjax", "train", "--layers", "0"], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "expected a positive integer, got 0" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "lstmjax", "evaluate", "/nonexistent"], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "lstmjax", "--help"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and all(c in r.stdout for c in ("train", "evaluate", "predict", "demo"))


@pytest.mark.slow
def test_local_processes(tmp_path):
    """``--local-processes 2``: two processes train one run through jax.distributed on 127.0.0.1."""
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "lstmjax", "train", *SMALL, "--out", str(out), "--cache-dir",
                        str(tmp_path / "cache"), "--local-processes", "2", "--devices", "2"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["parallel"] == "mesh" and metrics["support"] == 1066
    assert metrics["devices"] == 4  # --devices counts each process's devices
    assert main(["evaluate", str(out)]) == 0  # the checkpoint two processes wrote loads in one


def test_local_processes_failure(tmp_path):
    """A failing run in ``--local-processes`` mode: the launcher returns the failure, no process lingers."""
    r = subprocess.run([sys.executable, "-m", "lstmjax", "train", *SMALL, "--out", str(tmp_path / "run"),
                        "--data", str(tmp_path / "missing.csv"), "--local-processes", "2"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "missing.csv" in r.stderr
    assert str(tmp_path) not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout


def test_devices_option(tmp_path, capsys):
    """--devices 4 in a process whose JAX already runs 8 devices: mesh over the first 4."""
    out = tmp_path / "run"
    assert main(["train", *SMALL, "--devices", "4", "--parallel", "pmap", "--out", str(out),
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["devices"] == 4 and metrics["parallel"] == "pmap"
