"""Attributions and gate traces (lstmjax.explain) against captum, the model itself, and their own laws."""

import functools
import io
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstmjax import TextClassifier
from lstmjax.explain import (
    HighlightedText,
    format_explanation,
    gate_traces,
    gradient_x_input,
    integrated_gradients,
    integration_points,
    plot_gates,
    render_ansi,
    render_html,
)
from lstmjax.nn import interop

IDS = np.array([[5, 9, 3, 17, 2, 8], [4, 12, 7, 0, 0, 0], [11, 0, 0, 0, 0, 0]], np.int32)
LENGTHS = np.array([6, 3, 1], np.int32)


@functools.lru_cache(maxsize=None)  # the same model object each time: jitted functions compile once
def _model(cell="lstm", bidirectional=False, layers=1, pooling="last", seed=0):
    model = TextClassifier(vocab_size=20, num_classes=3, embed_dim=6, hidden_size=5, cell=cell,
                           bidirectional=bidirectional, num_layers=layers, pooling=pooling)
    variables = model.init(jax.random.key(seed), jnp.asarray(IDS))
    # Keras-style U(-0.05, 0.05) embeddings keep the model almost linear; N(0, 1) makes it bend.
    emb = 3.0 * jax.random.normal(jax.random.key(seed + 1), (20, 6), jnp.float32)
    dense = {**variables["params"]["dense"], "kernel": 8.0 * variables["params"]["dense"]["kernel"]}
    params = {**variables["params"], "embedding": {"embedding": emb}, "dense": dense}
    return model, {"params": params}


# Max pooling is piecewise: its integrand has kinks and quadrature converges slowly; mean and last are smooth.
# (The GRU and bidirectional stacks are checked against captum below; that is IG of the same integrand.)
CONFIGS = [("lstm", False, 1, "last")]


@pytest.mark.parametrize("cell,bidirectional,layers,pooling", CONFIGS)
def test_integrated_gradients_completeness_improves_with_steps(cell, bidirectional, layers, pooling):
    model, variables = _model(cell, bidirectional, layers, pooling)
    gaps = {}
    for method in ("gausslegendre", "riemann_trapezoid"):
        errs = []
        for steps in (4, 64):
            a = integrated_gradients(model, variables, IDS, LENGTHS, steps=steps, method=method)
            scale = 1.0 + np.abs(np.asarray(a.value - a.baseline_value))
            errs.append(float(np.max(np.abs(np.asarray(a.delta)) / scale)))
        gaps[method] = errs
        assert errs[1] < errs[0] / 4, (method, errs)
    assert gaps["gausslegendre"][1] < 1e-4, gaps  # the stated tolerance at 64 points
    assert gaps["riemann_trapezoid"][1] < 2e-3, gaps
    # The attributions do not vanish: the check is not trivially satisfied.
    a = integrated_gradients(model, variables, IDS, LENGTHS, steps=64)
    assert float(jnp.max(jnp.abs(a.value - a.baseline_value))) > 0.2


@pytest.mark.parametrize("baseline,output", [("pad", "logit"), ("unk", "probability"), (7, "probability")])
def test_completeness_other_baselines_targets_and_probability(baseline, output):
    model, variables = _model()
    a = integrated_gradients(model, variables, IDS, LENGTHS, target=np.array([0, 1, 2]), baseline=baseline,
                             output=output, steps=64)
    assert a.target.tolist() == [0, 1, 2]
    np.testing.assert_allclose(np.asarray(a.delta), 0.0, atol=1e-4)
    # f(baseline) is the model at the baseline token ids
    base_id = {"pad": 0, "unk": 1}.get(baseline, baseline)
    base_ids = np.where(np.arange(6)[None] < LENGTHS[:, None], base_id, IDS).astype(np.int32)
    logits = model.apply(variables, jnp.asarray(base_ids), jnp.asarray(LENGTHS))
    out = jax.nn.softmax(logits) if output == "probability" else logits
    np.testing.assert_allclose(np.asarray(a.baseline_value), np.asarray(out)[np.arange(3), [0, 1, 2]], atol=1e-6)


def test_default_target_is_prediction_and_padding_is_zero():
    model, variables = _model()
    logits = model.apply(variables, jnp.asarray(IDS), jnp.asarray(LENGTHS))
    for a in (gradient_x_input(model, variables, IDS, LENGTHS),
              integrated_gradients(model, variables, IDS, LENGTHS, steps=16)):
        assert a.scores.shape == (3, 6) and a.scores.dtype == jnp.float32
        assert a.target.tolist() == np.argmax(np.asarray(logits), -1).tolist()
        np.testing.assert_allclose(np.asarray(a.value), np.asarray(logits).max(-1), rtol=1e-6)
        scores = np.asarray(a.scores)
        assert np.all(scores[np.arange(6)[None] >= LENGTHS[:, None]] == 0.0)
        assert np.all(scores[np.arange(6)[None] < LENGTHS[:, None]] != 0.0)


def test_an_example_alone_or_in_a_padded_batch_gets_the_same_attributions():
    model, variables = _model()
    batch = integrated_gradients(model, variables, IDS, LENGTHS, steps=16)
    alone = integrated_gradients(model, variables, IDS[1:2, :3], LENGTHS[1:2], steps=16)
    np.testing.assert_allclose(np.asarray(alone.scores[0]), np.asarray(batch.scores[1, :3]), atol=1e-6)
    empty = integrated_gradients(model, variables, np.zeros((1, 4), np.int32), np.array([0], np.int32), steps=16)
    assert np.all(np.asarray(empty.scores) == 0.0) and float(jnp.abs(empty.delta[0])) < 1e-6


def test_integration_points_match_known_rules():
    for method in ("gausslegendre", "riemann_trapezoid", "riemann_middle", "riemann_left", "riemann_right"):
        a, w = integration_points(10, method)
        assert a.dtype == w.dtype == np.float32 and a.min() >= 0 and a.max() <= 1
        assert abs(float(w.sum()) - 1.0) < 1e-6
        exact = {"gausslegendre": 1e-6, "riemann_trapezoid": 5e-3, "riemann_middle": 5e-3}.get(method, 0.06)
        assert abs(float(np.sum(w * np.cos(a))) - np.sin(1.0)) < exact, method


# --------------------------------------------------------------------------- captum


def _torch_twin(model, variables):
    """embedding + recurrent (interop.to_torch) + pooling + dense, rebuilt in PyTorch from the params."""
    torch = pytest.importorskip("torch")
    p = jax.tree.map(np.asarray, variables["params"])
    rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[model.cell](
        model.embed_dim, model.hidden_size, num_layers=model.num_layers, bidirectional=model.bidirectional,
        batch_first=True)
    interop.to_torch(p["recurrent"], rnn)
    dense = torch.nn.Linear(p["dense"]["kernel"].shape[0], model.num_classes)
    with torch.no_grad():
        dense.weight.copy_(torch.from_numpy(p["dense"]["kernel"].T.copy()))
        dense.bias.copy_(torch.from_numpy(p["dense"]["bias"].copy()))
    directions = 2 if model.bidirectional else 1

    def forward(embedded, lengths):  # <float32>[B, T, E], <int64>[B] -> logits
        packed = torch.nn.utils.rnn.pack_padded_sequence(embedded, lengths.cpu(), batch_first=True,
                                                         enforce_sorted=False)
        out, state = rnn(packed)
        h_n = state[0] if model.cell == "lstm" else state
        if model.pooling == "last":
            features = torch.cat(list(h_n[-directions:]), dim=-1)
        else:
            y, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=embedded.shape[1])
            features = y.sum(1) / lengths[:, None].to(y.dtype)
        return dense(features)

    return torch, forward


@pytest.mark.parametrize("cell,bidirectional,layers,pooling", [("lstm", True, 1, "mean"), ("gru", False, 1, "last")])
def test_matches_captum(cell, bidirectional, layers, pooling):
    captum_attr = pytest.importorskip("captum.attr")
    model, variables = _model(cell, bidirectional, layers, pooling)
    ids, lengths = IDS[:2], LENGTHS[:2]  # lengths ≥ 1 (PyTorch's packing refuses 0)
    torch, forward = _torch_twin(model, variables)
    embedded = torch.from_numpy(np.asarray(model.apply(variables, jnp.asarray(ids), method=model.embed)).copy())
    t_lengths = torch.from_numpy(lengths.astype(np.int64))
    np.testing.assert_allclose(forward(embedded, t_lengths).detach().numpy(),
                               np.asarray(model.apply(variables, jnp.asarray(ids), jnp.asarray(lengths))), atol=1e-5)
    target = torch.tensor([0, 2])
    mask = torch.from_numpy((np.arange(6)[None] < lengths[:, None]).astype(np.float32))[..., None]
    baseline = embedded * (1 - mask)  # zero embedding at real tokens, padding left as it is

    ixg = captum_attr.InputXGradient(forward).attribute(embedded, target=target, additional_forward_args=(t_lengths,))
    ours = gradient_x_input(model, variables, ids, lengths, target=np.array([0, 2]))
    np.testing.assert_allclose(np.asarray(ours.scores), (ixg * mask).sum(-1).detach().numpy(), atol=2e-5)

    ig = captum_attr.IntegratedGradients(forward)
    steps = 16  # one compilation: the rule's points and weights are arguments, their number is not
    for method, factor in (("gausslegendre", 1.0), ("riemann_middle", 1.0),
                           ("riemann_trapezoid", 16 / 15)):  # see integration_points
        theirs, delta = ig.attribute(embedded, baselines=baseline, target=target, additional_forward_args=(t_lengths,),
                                     n_steps=steps, method=method, return_convergence_delta=True)
        ours = integrated_gradients(model, variables, ids, lengths, target=np.array([0, 2]), steps=steps, method=method)
        np.testing.assert_allclose(np.asarray(ours.scores), factor * theirs.sum(-1).detach().numpy(), atol=2e-5,
                                   err_msg=method)
        if factor == 1.0:
            np.testing.assert_allclose(np.asarray(ours.delta), delta.detach().numpy(), atol=2e-5)


# --------------------------------------------------------------------------- gate traces


@pytest.mark.parametrize("cell,bidirectional,layers", [("lstm", True, 2), ("gru", True, 2), ("rnn", False, 1)])
def test_gate_traces_reproduce_the_model(cell, bidirectional, layers):
    model, variables = _model(cell, bidirectional, layers, "mean")
    trace = gate_traces(model, variables, IDS, LENGTHS)
    directions = ("forward", "backward") if bidirectional else ("forward",)
    assert sorted(trace) == sorted(f"layer_{l}_{d}" for l in range(layers) for d in directions)
    embedded = model.apply(variables, jnp.asarray(IDS), method=model.embed)
    outputs, _ = model.apply(variables, embedded, jnp.asarray(LENGTHS), method=lambda m, e, n: m.recurrent(e, n))
    top = jnp.concatenate([trace[f"layer_{layers - 1}_{d}"]["h"] for d in directions], axis=-1)
    np.testing.assert_allclose(np.asarray(top), np.asarray(outputs), atol=1e-5)
    valid = np.arange(6)[None, :, None] < LENGTHS[:, None, None]
    for name, gates in trace.items():
        for g, v in gates.items():
            assert v.shape == (3, 6, 5), (name, g)
            assert np.all(np.asarray(v)[~np.broadcast_to(valid, v.shape)] == 0.0)
        if cell == "lstm":
            # c_t = f ⊙ c_{t-1} + i ⊙ c̃ and h_t = o ⊙ tanh(c_t), step by step in reading order.
            back = name.endswith("backward")
            for b, n in enumerate(LENGTHS):
                order = list(range(n))[::-1] if back else list(range(n))
                c_prev = np.zeros(5, np.float32)
                for t in order:
                    gi = {k: np.asarray(v[b, t]) for k, v in gates.items()}
                    np.testing.assert_allclose(gi["c"], gi["f"] * c_prev + gi["i"] * gi["c_tilde"], atol=1e-6)
                    np.testing.assert_allclose(gi["h"], gi["o"] * np.tanh(gi["c"]), atol=1e-6)
                    assert np.all((gi["f"] > 0) & (gi["f"] < 1))
                    c_prev = gi["c"]
    if cell == "gru":
        g = trace["layer_0_forward"]
        assert sorted(g) == ["h", "n", "r", "z"]


# --------------------------------------------------------------------------- rendering


def test_html_escapes_and_colours():
    h = render_html([["<script>", "good"], ["bad"]], [[0.5, 1.0, 0.0], [-2.0]], labels=["pos & 0.9", "neg"])
    out = h._repr_html_()
    assert "<script>" not in out and "&lt;script&gt;" in out and "pos &amp; 0.9" in out
    assert "rgba(0, 160, 0, 0.500)" in out and "rgba(220, 0, 0, 1.000)" in out
    assert isinstance(h, HighlightedText) and str(h) == "<script>[+0.50] good[+1.00]\nbad[-2.00]"
    with pytest.raises(ValueError, match="3 tokens but 2 scores"):
        render_html(["a", "b", "c"], [0.1, 0.2])


def test_ansi_plain_and_colour(monkeypatch):
    assert render_ansi(["x", "y"], [0.25, -0.5], color=False) == "x[+0.25] y[-0.50]"
    coloured = render_ansi(["x", "y"], [0.25, -0.5], color=True)
    assert "\x1b[48;2;" in coloured and coloured.count("\x1b[0m") == 2
    monkeypatch.setattr(sys, "stdout", io.StringIO())  # not a terminal
    assert "\x1b" not in render_ansi(["x"], [1.0])


def test_plot_gates_labels_tokens():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    model, variables = _model()
    trace = gate_traces(model, variables, IDS, LENGTHS)
    fig = plot_gates(trace, ["a", "b", "c"], example=1)
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == ["i", "f", "c_tilde", "o", "c", "h"]
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="no gate 'r'"):
        plot_gates(trace, ["a"], gates=["r"])


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs,error,message", [
    ({"target": 3}, ValueError, r"target\[0\] = 3 is not a class index in \[0, 3\)"),
    ({"baseline": "mean"}, ValueError, "baseline must be"),
    ({"baseline": 99}, ValueError, r"token id in \[0, 20\)"),
    ({"steps": 0}, ValueError, "steps must be an integer >= 1"),
    ({"steps": 1, "method": "riemann_trapezoid"}, ValueError, "steps must be an integer >= 2"),
    ({"method": "simpson"}, ValueError, "method must be one of"),
    ({"output": "loss"}, ValueError, "output must be 'logit' or 'probability'"),
    ({"lengths": np.array([7, 1, 1], np.int32)}, ValueError, r"lengths\[0\] = 7 is outside"),
])
def test_bad_input(kwargs, error, message):
    model, variables = _model()
    kwargs = {"lengths": LENGTHS, **kwargs}
    with pytest.raises(error, match=message):
        integrated_gradients(model, variables, IDS, **kwargs)
    with pytest.raises(TypeError, match="token_ids must be integers"):
        gradient_x_input(model, variables, IDS.astype(np.float32))


# --------------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from lstmjax.app.cli import main

    out = tmp_path_factory.mktemp("explain") / "run"
    small = ["--epochs", "1", "--hidden", "8", "--embed-dim", "8", "--max-len", "16", "--vocab-size", "800",
             "--batch-size", "128"]
    assert main(["train", *small, "--out", str(out), "--cache-dir", str(tmp_path_factory.mktemp("cache"))]) == 0
    return out


def test_explain_command(run_dir, capsys, monkeypatch):
    from lstmjax.app.cli import main
    from lstmjax.app.predictor import Predictor
    from lstmjax.explain import explain_texts

    capsys.readouterr()
    monkeypatch.setenv("NO_COLOR", "1")
    assert main(["explain", str(run_dir), "a gorgeous, moving film", "a <dull> mess"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and "\x1b" not in "".join(lines)
    expected = explain_texts(Predictor(run_dir), ["a gorgeous, moving film", "a <dull> mess"])
    for head, body, e in zip(lines[::2], lines[1::2], expected):
        assert head.startswith(e.label) and f"{e.label} {e.probabilities[e.label]:.3f}" in head
        assert body.strip() == format_explanation(e, color=False).splitlines()[1].strip()
        assert body.strip().startswith("a[") and len(body.split()) == len(e.tokens)
        assert abs(e.delta) < 1e-3 * (1 + abs(sum(e.scores)))
    # stdin, another method and an explicit target
    monkeypatch.setattr(sys, "stdin", io.StringIO("first line\nsecond line\n"))
    assert main(["explain", str(run_dir), "--method", "grad_x_input", "--target", "neg"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4 and all("attributions for neg" in line for line in out[::2])
    assert main(["explain", str(run_dir), "--target", "maybe", "text"]) == 2
    assert "unknown label 'maybe'" in capsys.readouterr().err
    assert main(["explain", "/nonexistent/run", "text"]) == 2
    assert "no such run directory" in capsys.readouterr().err
