"""`deepdive graph`: the scratch engine's recorded graph, drawn as the article draws it.

The checks read the DOT text back (nodes, their labels, the edges) and compare it with what the model
code computes and with gradients worked out by hand in NumPy.
"""
import ast
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import assert_one_line_error

NODE = re.compile(r'^\s*(n\d+) \[label="(.*)", class=(\w+),', re.M)
EDGE = re.compile(r'^\s*(n\d+) -> (n\d+) \[label="(.*)"\];', re.M)


def parse(dot):
    """{key: (kind, [label lines])} and [(source, target, edge label)] from our DOT."""
    nodes = {key: (kind, label.split("\\n")) for key, label, kind in NODE.findall(dot)}
    return nodes, EDGE.findall(dot)


def by_name(nodes):
    return {lines[0]: (key, kind, lines) for key, (kind, lines) in nodes.items()}


def values(lines, prefix):
    """The numbers printed after ``prefix =`` (they may run over several label lines)."""
    start = next(i for i, line in enumerate(lines) if line.startswith(prefix + " = "))
    text = lines[start][len(prefix) + 3:]
    for line in lines[start + 1:]:
        if " = " in line:
            break
        text += line
    return np.array(ast.literal_eval(text), dtype=float)


def test_perceptron_graph_has_exactly_the_nodes_of_w_transpose_x_plus_b(cli):
    result = cli("graph", "perceptron")
    assert result.code == 0, result.err
    nodes, edges = parse(result.out)
    # x flattened (data: the engine records nothing before the first weight), w, b; wᵀ, @, +
    kinds = sorted((kind, lines[0], lines[1]) for kind, lines in nodes.values())
    assert kinds == [("input", "x", "1x784"), ("op", "add", "1x10"), ("op", "matmul", "1x10"),
                     ("op", "transpose", "784x10"), ("param", "fc.bias", "10"), ("param", "fc.weight", "10x784")]
    key = {lines[0]: k for k, (_, lines) in nodes.items()}
    assert sorted((s, t) for s, t, _ in edges) == sorted([
        (key["fc.weight"], key["transpose"]), (key["x"], key["matmul"]), (key["transpose"], key["matmul"]),
        (key["matmul"], key["add"]), (key["fc.bias"], key["add"])])
    assert (key["x"], key["matmul"], "a: 1x784") in edges  # data edges carry their shapes


def test_mlp_backward_is_readable(cli):
    result = cli("graph", "mlp", "--backward")
    assert result.code == 0, result.err
    assert result.out == cli("graph", "simplenet", "--backward").out  # an alias, and seeded
    nodes, edges = parse(result.out)
    assert len(nodes) == 23 and len(edges) == 22
    ops = sorted(lines[0] for kind, lines in nodes.values() if kind == "op")
    # cross-entropy is composed: log_softmax, the target's log-probability gathered (index), −Σ/N (sum, mul)
    assert ops == ["add"] * 3 + ["index", "log_softmax"] + ["matmul"] * 3 + ["mul"] + ["relu"] * 2 + ["sum"] + \
        ["transpose"] * 3
    consts = [lines[0] for kind, lines in nodes.values() if kind == "const"]
    assert consts == ["-1"]  # the mean's factor −1/N, N = 1
    params = {lines[0]: lines[1] for kind, lines in nodes.values() if kind == "param"}
    assert params == {"fc1.weight": "128x784", "fc1.bias": "128", "fc2.weight": "64x128", "fc2.bias": "64",
                      "fc3.weight": "10x64", "fc3.bias": "10"}
    for kind, lines in nodes.values():
        if kind == "op":  # name, shape, local gradient formula, the gradient it received
            assert lines[2].startswith("∂L/∂") and any(line.startswith("∂L/∂y = ") for line in lines), lines
        if kind == "param":
            assert any(line.startswith(f"∂L/∂{lines[0]} = ") for line in lines), lines
    named = by_name(nodes)
    assert "∂L/∂fc1.weight = 128x784, norm " in "\n".join(named["fc1.weight"][2])  # large: summarised
    assert values(named["mul"][2], "∂L/∂y") == 1  # the loss: L = (Σ log p_y)·(−1/N)
    # the chain rule on real numbers: ∂L/∂logits = softmax(logits) − onehot(label 0), and it reaches fc3.bias
    logits = values(named["add"][2], "y").ravel()  # the one add small enough to print: the logits
    expected = np.exp(logits) / np.exp(logits).sum() - np.eye(10)[0]
    np.testing.assert_allclose(values(named["fc3.bias"][2], "∂L/∂fc3.bias"), expected, atol=2e-4)


def test_expression_gradients_equal_a_hand_computation(cli):
    result = cli("graph", "relu(w @ x + b)", "--shape", "w=4x3", "--shape", "x=3", "--shape", "b=4", "--backward")
    assert result.code == 0, result.err
    nodes, _ = parse(result.out)
    named = by_name(nodes)
    assert {n: named[n][1] for n in "wxb"} == {"w": "variable", "x": "variable", "b": "variable"}
    w, x, b = (values(named[n][2], n) for n in "wxb")
    z = w @ x + b
    assert np.abs(z).min() > 1e-2 and 0 < (z > 0).sum() < 4  # seed 0: ReLU passes some, blocks others
    mask = (z > 0).astype(float)  # L = Σ relu(z): ∂L/∂z = [z > 0]
    np.testing.assert_allclose(values(named["w"][2], "∂L/∂w"), np.outer(mask, x), atol=2e-4)
    np.testing.assert_allclose(values(named["x"][2], "∂L/∂x"), w.T @ mask, atol=2e-4)
    np.testing.assert_allclose(values(named["b"][2], "∂L/∂b"), mask, atol=2e-4)
    assert "∂L/∂x = g·[x > 0]" in named["relu"][2]


def test_scalar_chain_rule(cli):
    result = cli("graph", "tanh(a * b + c)", "--backward", "--seed", "3")
    assert result.code == 0, result.err
    named = by_name(parse(result.out)[0])
    a, b, c = (values(named[n][2], n) for n in "abc")
    assert named["a"][2][1] == "scalar" and "tanh" in named and "sum" not in named  # scalar: L is it
    slope = 1 - np.tanh(a * b + c) ** 2
    assert values(named["a"][2], "∂L/∂a") == pytest.approx(slope * b, abs=2e-4)
    assert values(named["b"][2], "∂L/∂b") == pytest.approx(slope * a, abs=2e-4)
    assert values(named["c"][2], "∂L/∂c") == pytest.approx(slope, abs=2e-4)


def test_article_cnn_graph(cli):
    state = np.random.get_state()
    result = cli("graph", "article-cnn", "--backward")
    assert result.code == 0, result.err
    assert np.array_equal(np.random.get_state()[1], state[1])  # NumPy's global generator left as it was
    named = by_name(parse(result.out)[0])
    for i, shape in enumerate(["64x3x3x3", "128x64x3x3", "128x128x3x3", "64x128x3x3"], start=1):
        assert named[f"conv{i}.weight"][2][1] == shape
    assert {"conv2d", "adaptive_avg_pool2d", "mul", "log_softmax", "index", "constant"} <= set(named)
    # dropout is a product with a constant: the mask/(1 − p), drawn as a constant node feeding a mul
    nodes, edges = parse(result.out)
    mask = next(key for key, (kind, lines) in nodes.items() if kind == "const" and lines[0] == "constant")
    target = next(t for s, t, _ in edges if s == mask)
    assert nodes[target][1][0] == "mul" and nodes[target][1][1] == nodes[mask][1][1]
    assert named["x"][2][1] == "1x3x32x32"


def test_svg_through_graphviz(cli, tmp_path):
    pytest.importorskip("graphviz", reason="pip install graphviz")
    if shutil.which("dot") is None:
        pytest.skip("apt-get install graphviz")
    out = tmp_path / "perceptron.svg"  # the format follows the suffix
    result = cli("graph", "perceptron", "--out", out)
    assert result.code == 0, result.err
    assert result.out.strip() == f"graph: {out} (6 nodes)"
    svg = out.read_text()
    assert "<svg" in svg and "fc.weight" in svg and svg.count('class="node') == 6


def test_missing_dot_or_package_is_one_line(cli, tmp_path, monkeypatch):
    import deepdive.viz.graph_dot as graph

    monkeypatch.setattr(graph.shutil, "which", lambda name: None)
    assert_one_line_error(cli("graph", "perceptron", "--format", "png", "--out", tmp_path / "g.png"),
                          "apt-get install graphviz")
    monkeypatch.setitem(sys.modules, "graphviz", None)  # import graphviz now fails
    assert_one_line_error(cli("graph", "perceptron", "--format", "svg"), "pip install graphviz")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("args, fragment", [
    (["percepton"], "unknown target"),
    (["fastnet"], "torch only"),
    (["__import__('os').getcwd()"], "only these functions"),
    (["x + 'a'"], "is not a number"),
    (["open(x)"], "only these functions"),
    (["x.shape + 1"], ".shape is not allowed"),
    (["x[0] + 1"], "Subscript is not allowed"),
    (["w @@ x"], "neither a model"),
    (["relu(x, y)"], "exactly one argument"),
    (["1 + 2"], "no operation on a variable"),
    (["--", "-" * 500 + "x"], "nested more than"),
    (["w @ x", "--shape", "w=4x3", "--shape", "x=2"], "cannot evaluate"),
    (["w @ x", "--shape", "w=4y3"], "--shape 'w=4y3' is invalid"),
    (["w @ x", "--shape", "z=3"], "names no variable"),
    (["mlp", "--shape", "w=3"], "--input-shape"),
    (["mlp", "--input-shape", "1,28"], "C,H,W"),
    (["mlp", "--batch", "0"], "--batch 0"),
    (["article-cnn", "--input-shape", "3,8,8"], "at least 9x9"),
])
def test_bad_input_is_one_line(cli, args, fragment):
    assert_one_line_error(cli("graph", *args), fragment)


def test_import_is_light():
    code = ("import sys, deepdive.viz.graph; "
            "print(sorted(m for m in ('torch', 'numpy', 'graphviz', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
