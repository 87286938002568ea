"""The ``lstmjax`` command (also ``python -m lstmjax``).

Subcommands:

* ``lstmjax train``: train a classifier (the document's model on the built-in dataset by default),
  evaluate it, write a run directory (:mod:`lstmjax.app.run`).
* ``lstmjax evaluate DIR``: evaluate a run on its test split (or another dataset / split).
* ``lstmjax predict DIR "text" ...``: label probabilities per text (or per line of stdin); DIR is a
  run directory or a folder written by ``lstmjax export`` (any format).
* ``lstmjax explain DIR "text" ...``: the prediction and each token's attribution (integrated
  gradients), coloured on a terminal (:mod:`lstmjax.explain`).
* ``lstmjax export DIR --out FOLDER``: the run's model as a ``jax.export`` file that runs without
  lstmjax's model code (or an ONNX graph, ``--format onnx``), beside its vocabulary and tokenizer
  (:mod:`lstmjax.app.export`); ``--format hub``: a Hugging Face–style bundle (:mod:`lstmjax.app.bundle`).
* ``lstmjax demo``: build the document's classifier (Embedding → LSTM → Dense), show its
  parameters, run it on a batch of variable-length sequences, check the layer against a plain
  Python loop of the pure cell, and time the forward pass.

User errors (bad arguments, missing files, bad data) exit with a message and status 2, never a
traceback; a diverged training (NaN loss) exits with status 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from collections.abc import Sequence

__all__ = ["main"]


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _at_least(low: int):
    def check(text: str) -> int:
        value = _positive(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value

    return check


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"expected a seed in [0, {2**32 - 1}], got {value}")
    return value


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per :class:`~lstmjax.app.config.Config` field: ``max_len`` → ``--max-len``."""
    from lstmjax.app.config import Config

    group = parser.add_argument_group("run configuration (lstmjax.app.config.Config)")
    for f in dataclasses.fields(Config):
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata['help']} (default: {f.default})"
        if f.type in (bool, "bool"):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
            continue
        kind = {"int": int, "float": float, "str": str, "int | None": int, "float | None": float}[str(f.type)]
        if kind is int and f.name in ("max_len", "vocab_size", "min_freq", "layers", "embed_dim", "hidden",
                                      "epochs", "batch_size", "patience", "devices", "save_every"):
            kind = _positive
        group.add_argument(flag, type=kind, default=None, choices=f.metadata.get("choices"),
                           metavar=f.name.upper() if not f.metadata.get("choices") else None, help=help_text)


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def _config_from_args(args: argparse.Namespace):
    """The Config the options ask for; a bad value is an error that names its option (``--seed must be ...``)."""
    from lstmjax.app.config import Config

    changes = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if getattr(args, f.name) is not None}
    return Config(**changes)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lstmjax", description="A pure-functional LSTM in JAX: train, evaluate and use text classifiers.",
        epilog="Run 'lstmjax COMMAND --help' for a command's options.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_train, _add_evaluate, _add_predict, _add_explain, _add_export, _add_demo):
        add(sub)
    return parser


def _add_train(sub) -> None:
    train = sub.add_parser(
        "train", help="train a text classifier (default: the document's model on the built-in dataset)",
        description="Train Embedding → recurrent stack → Dense on a dataset, evaluate it on the test split "
                    "(validation if there is none), print a metrics table, and write DIR/metrics.json, "
                    "DIR/history.png and a checkpoint after every epoch.")
    _add_config_arguments(train)
    train.add_argument("--out", metavar="DIR", default=None,
                       help="run directory (default: runs/<data>-<date>-<time>)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its last intact checkpoint (the options must match the "
                            "run's, except --epochs, --patience, --save-every, --parallel, --devices)")
    train.add_argument("--allow-change", action="append", default=[], metavar="OPTION",
                       help="with --resume: let this option differ from the run's (e.g. --allow-change lr to "
                            "fine-tune with a new learning rate); the change is recorded in the run directory")
    train.add_argument("--cache-dir", metavar="DIR", default=None,
                       help="Hugging Face datasets cache (default: HF_DATASETS_CACHE or ~/.cache/huggingface)")
    train.add_argument("--local-processes", type=_positive, default=None, metavar="N",
                       help="start N processes on this machine that train together through jax.distributed "
                            "(each with --devices devices, default 1), to try multi-host training locally")


def _add_evaluate(sub) -> None:
    evaluate = sub.add_parser("evaluate", help="evaluate a trained run on a dataset split",
                              description="Load DIR's model and evaluate it; prints the metrics table.")
    evaluate.add_argument("run", metavar="DIR", help="a run directory written by 'lstmjax train'")
    evaluate.add_argument("--data", default=None, help="dataset (default: the one the run was trained on)")
    evaluate.add_argument("--split", default=None, help="split to evaluate (default: test, else validation)")
    evaluate.add_argument("--cache-dir", metavar="DIR", default=None, help="Hugging Face datasets cache")


def _add_predict(sub) -> None:
    predict = sub.add_parser("predict", help="class probabilities for texts (arguments, or lines on stdin)",
                             description="Print each text's predicted label and the probability of every label.")
    predict.add_argument("run", metavar="DIR",
                         help="a run directory written by 'lstmjax train', or a folder written by 'lstmjax export'")
    predict.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify (default: read lines from stdin)")
    predict.add_argument("--json", action="store_true", help="one JSON object per line")


def _add_explain(sub) -> None:
    explain = sub.add_parser("explain", help="prediction and per-token attributions (arguments, or lines on stdin)",
                             description="Print each text's prediction, every label's probability and each token's "
                                         "attribution (green pushes towards the explained label, red against; plain "
                                         "[+0.31] annotations when stdout is not a terminal or NO_COLOR is set).")
    explain.add_argument("run", metavar="DIR", help="a run directory written by 'lstmjax train'")
    explain.add_argument("texts", nargs="*", metavar="TEXT", help="texts to explain (default: read lines from stdin)")
    explain.add_argument("--method", choices=("ig", "grad_x_input"), default="ig",
                         help="integrated gradients (default) or gradient × input")
    explain.add_argument("--steps", type=_positive, default=50,
                         help="integration points for integrated gradients (Gauss–Legendre; default: 50)")
    explain.add_argument("--target", metavar="LABEL", default=None,
                         help="the label to explain (default: the predicted one)")


def _add_export(sub) -> None:
    export = sub.add_parser(
        "export", help="the run's model as one file that runs without lstmjax (jax.export, ONNX) or as a Hub bundle",
        description="Write FOLDER with the run's inference function (token ids + lengths → label probabilities, "
                    "parameters inside, any batch size and length) as model.jaxexport (jax.export's serialized "
                    "StableHLO: runs with jax alone) or model.onnx (jax2onnx: any ONNX runtime), beside the run's "
                    "vocabulary, tokenizer and labels, export.json and a README saying how to call it; or, with "
                    "--format hub, a bundle in the Hugging Face Hub's layout (model.safetensors, config.json, "
                    "vocabulary, model card). 'lstmjax predict FOLDER' reads each.")
    export.add_argument("run", metavar="DIR", help="a run directory written by 'lstmjax train'")
    export.add_argument("--out", metavar="FOLDER", required=True, help="the folder to write (new or empty)")
    export.add_argument("--format", choices=("stablehlo", "onnx", "hub"), default="stablehlo",
                        help="stablehlo: jax.export (default); onnx: jax2onnx (pip install \"lstmjax[onnx]\"); "
                             "hub: safetensors + config + model card, for Predictor.from_pretrained")


def _add_demo(sub) -> None:
    demo = sub.add_parser("demo", help="build the document's model, check it, and time a forward pass",
                          description="Build Embedding → recurrent stack → Dense, check the recurrent layer "
                                      "against a Python loop of the pure cell, and time a forward pass.")
    demo.add_argument("--cell", choices=("lstm", "gru", "rnn"), default="lstm", help="recurrent cell (default: lstm)")
    demo.add_argument("--layers", type=_positive, default=1, help="stacked recurrent layers (default: 1)")
    demo.add_argument("--bidirectional", action="store_true", help="bidirectional recurrent layers")
    demo.add_argument("--vocab", type=_at_least(3), default=20000,
                      help="vocabulary size, PAD and UNK included (default: 20000; at least 3)")
    demo.add_argument("--embed", type=_positive, default=128, help="embedding size (default: 128)")
    demo.add_argument("--hidden", type=_positive, default=128, help="hidden size (default: 128)")
    demo.add_argument("--classes", type=_positive, default=2, help="number of classes (default: 2)")
    demo.add_argument("--batch-size", type=_positive, default=32, help="batch size (default: 32)")
    demo.add_argument("--max-len", type=_positive, default=200, help="padded sequence length (default: 200)")
    demo.add_argument("--seed", type=_seed, default=0, help="random seed in [0, 2**32) (default: 0)")


def _print_report(report: dict, title: str) -> None:
    names = list(report["per_class"])
    width = max(12, *(len(n) for n in names))
    print(title)
    print(f"  {'':<{width}} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>9}")
    for name, r in report["per_class"].items():
        print(f"  {name:<{width}} {r['precision']:>9.4f} {r['recall']:>9.4f} {r['f1']:>9.4f} {r['support']:>9}")
    for avg in ("macro", "weighted"):
        r = report[avg]
        print(f"  {avg + ' avg':<{width}} {r['precision']:>9.4f} {r['recall']:>9.4f} {r['f1']:>9.4f} {report['support']:>9}")
    print(f"  {'accuracy':<{width}} {report['accuracy']:>9.4f}   loss {report['loss']:.4f}")
    print("  confusion matrix (rows: true, columns: predicted):")
    for name, row in zip(names, report["confusion_matrix"]):
        print(f"    {name:<{width}} " + " ".join(f"{v:>7}" for v in row))


def _launch(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """``lstmjax train --local-processes N``: the same command in N processes (:func:`lstmjax.parallel.launch_local_processes`)."""
    from lstmjax.parallel.processes import launch_local_processes

    if args.out is None:
        raise ValueError("--local-processes needs --out DIR (all processes write one run)")
    child_argv, skip = [], False
    for a in argv:  # the same command without --local-processes
        if skip:
            skip = False
        elif a == "--local-processes":
            skip = True
        elif not a.startswith("--local-processes="):
            child_argv.append(a)
    return launch_local_processes(child_argv, args.local_processes)


def _train(args: argparse.Namespace) -> int:
    from lstmjax.app import run

    config = _config_from_args(args)
    if args.resume and args.out is None:
        raise ValueError("--resume needs --out DIR (the run to continue)")
    from lstmjax.parallel.processes import process_index

    if args.allow_change and not args.resume:
        raise ValueError("--allow-change applies to --resume (a change to a run being continued)")
    allowed = tuple(name.lstrip("-").replace("-", "_") for name in args.allow_change)
    quiet = process_index() > 0
    result = run.train(config, args.out, resume=args.resume, cache_dir=args.cache_dir, allow_change=allowed,
                       log=(lambda *a, **k: None) if quiet else print)
    if quiet:
        return 0
    m = result.metrics
    _print_report(m, f"test metrics ({m['split']} split, {m['support']} examples):")
    print(f"wrote {result.directory / 'metrics.json'}, {result.directory / 'history.png'} and checkpoints "
          f"in {result.directory / 'checkpoints'} ({m['seconds']:.1f} s)")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from lstmjax.app.predictor import evaluate_run

    report = evaluate_run(args.run, data=args.data, split=args.split, cache_dir=args.cache_dir)
    _print_report(report, f"metrics ({report['split']} split, {report['support']} examples):")
    return 0


def _predict(args: argparse.Namespace) -> int:
    import json

    from lstmjax.app.predictor import Predictor

    texts = list(args.texts) if args.texts else [line.rstrip("\n") for line in sys.stdin]
    if not texts:
        raise ValueError("no texts: pass them as arguments or as lines on stdin")
    from lstmjax.app.export import ExportedModel, is_exported

    predictor = ExportedModel(args.run) if is_exported(args.run) else Predictor(args.run)
    probs = predictor.predict_proba(texts)
    names = predictor.label_names
    for text, p in zip(texts, probs):
        best = names[int(p.argmax())]
        if args.json:
            print(json.dumps({"text": text, "label": best,
                              "probabilities": {n: round(float(v), 6) for n, v in zip(names, p)}},
                             ensure_ascii=False))
        else:
            shown = "  ".join(f"{n} {v:.3f}" for n, v in zip(names, p))
            note = "  (empty text: no tokens)" if not text.strip() else ""
            print(f"{best:<10} {shown}  | {_printable(text[:70])}{note}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from lstmjax.app.export import MODEL_FILES, export_run

    out = export_run(args.run, args.out, format=args.format)
    model = out / MODEL_FILES[args.format]
    alone = {"onnx": "onnxruntime", "stablehlo": "jax alone", "hub": "Predictor.from_pretrained"}[args.format]
    print(f"wrote {model} ({model.stat().st_size / 2**20:.1f} MiB) with its vocabulary, tokenizer and labels; "
          f"run it with: lstmjax predict {out} \"a text\"  (or {alone}: see {out / 'README.md'})")
    return 0


def _printable(text: str) -> str:
    """``text`` safe to print on a terminal: control characters (escape sequences) shown as ``\\x1b``."""
    import unicodedata

    return "".join(repr(c)[1:-1] if unicodedata.category(c) in ("Cc", "Cf") and c != " " else c for c in text)


def _explain(args: argparse.Namespace) -> int:
    from lstmjax.app.predictor import Predictor
    from lstmjax.explain import explain_texts, format_explanation

    texts = list(args.texts) if args.texts else [line.rstrip("\n") for line in sys.stdin]
    if not texts:
        raise ValueError("no texts: pass them as arguments or as lines on stdin")
    for e in explain_texts(Predictor(args.run), texts, method=args.method, steps=args.steps, target=args.target):
        print(format_explanation(e))
    return 0


def _setup_devices(args: argparse.Namespace) -> None:
    """Before JAX starts: simulated CPU devices for --devices, and joining a multi-process run."""
    import os

    from lstmjax.parallel.processes import configure_cpu_devices, initialize_distributed

    configure_cpu_devices(getattr(args, "devices", None))
    if os.environ.get("LSTMJAX_COORDINATOR"):
        initialize_distributed()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lstmjax`` command; returns the exit status.

    User errors (bad options, missing files, bad data, a run that does not match) print
    ``lstmjax: error: ...`` and return 2; a diverged training (NaN loss) returns 1.

    Example:
      >>> main(["demo", "--vocab", "50", "--embed", "8", "--hidden", "8", "--batch-size", "2", "--max-len", "5"])
      model: Embedding(50, 8) → LSTM(8, layers=1, bidirectional=False) → Dense(2)
      ...
      0
    """
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.command in ("predict", "explain") and not any(e.startswith("-") for e in extra):
            args.texts += extra  # texts after an option: predict DIR --json "text" ...
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not sys.stderr.isatty():
        import datasets

        datasets.disable_progress_bars()  # keep logs of non-interactive runs readable
    from lstmjax.app.allocator import reexec_with_malloc_tunables
    from lstmjax.app.demo import demo

    commands = {"train": _train, "evaluate": _evaluate, "predict": _predict, "explain": _explain, "export": _export,
                "demo": demo}
    try:
        if args.command == "train" and args.local_processes:
            return _launch(args, list(argv if argv is not None else sys.argv[1:]))
        if args.command == "train":
            reexec_with_malloc_tunables(argv)  # allocator setting; no-op when set, or when called from Python
            _setup_devices(args)
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return commands[args.command](args)
    except KeyboardInterrupt:
        print("lstmjax: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - user errors become messages, not tracebacks
        from lstmjax.training import TrainingError

        if isinstance(e, TrainingError):
            print(f"lstmjax: training failed: {e}", file=sys.stderr)
            return 1
        if isinstance(e, (ValueError, TypeError, OSError, ImportError)):
            print(f"lstmjax: error: {_describe(e)}", file=sys.stderr)
            return 2
        raise


_SHOW_WARNING = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """lstmjax's own warnings (data, vocabulary, checkpoints) as ``lstmjax: warning: ...`` lines on stderr."""
    if category.__module__.startswith("lstmjax"):
        print(f"lstmjax: warning: {message}", file=sys.stderr)
    else:
        _SHOW_WARNING(message, category, filename, lineno, file, line)


def _describe(error: BaseException) -> str:
    """An error as one readable message: a config field as its option (``--seed must be ...``), an
    ``OSError`` with what failed and where."""
    from lstmjax.app.config import ConfigError

    field = getattr(error, "field", None)
    if isinstance(error, ConfigError) and field and str(error).startswith(field):
        return _flag(field) + str(error)[len(field):]
    if isinstance(error, OSError) and error.strerror:
        where = " ".join(repr(str(f)) for f in (error.filename, error.filename2) if f)
        hint = " (the disk is full: free space, then --resume)" if error.errno == 28 else ""
        return f"{error.strerror}{': ' + where if where else ''}{hint}"
    return str(error)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
