"""``deepdive graph``: the computational graph as the article draws it, read off the scratch engine.

Operations are nodes, data flows along the edges (labelled with its shape), leaves are the inputs and
the parameters. Nothing is drawn from a description of the model: the graph is the one the engine
recorded while computing (each ``Tensor._node`` is an operation, its context and its inputs), so what
is shown is what ``backward()`` will walk.

With ``--backward`` the engine's own backward pass runs and every node also shows its local gradient
formula (g = ∂L/∂y arriving from above) and the gradient values it received: the chain rule on real
numbers. Intermediate gradients are not kept by the engine, so each recorded operation is wrapped in
an observer that notes the gradient arriving at it and hands over to the operation's own backward.

DOT, SVG and PNG are written by viz/graph_dot.py.
"""
from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, field

from deepdive.config.specs import scratch_models
from deepdive.viz.graph_dot import numbers_text, shape_text
from deepdive.viz.graph_shapes import check_result_sizes
from deepdive.errors import UserError, first_line

# numpy, the engine, graphviz: imported where used, since building the CLI's parser imports this module

MODEL_TARGETS = {**{name: name for name in scratch_models()}, "mlp": "simplenet"}  # (the article calls it an MLP)
TITLES = {"perceptron": "perceptron f(x, w) = wᵀx + b", "simplenet": "mlp (the article's SimpleNet)",
          "article-cnn": "article-cnn (the article's Net, in training mode: dropout as a product with its drawn mask)"}
FUNCTIONS = ("relu", "sigmoid", "tanh", "exp", "log", "sum", "mean", "max")
MAX_ELEMENTS = 1_000_000  # per --shape variable: a graph, not a benchmark
MAX_EXAMPLE = 200_000  # numbers per model input example (3x224x224 fits)
MAX_EXPRESSION = 1000  # characters
MAX_DEPTH = 400  # operations nested in one another

# Operation class -> (name drawn, names of its positional inputs, local gradient with g = ∂L/∂y).
OPS = {
    "Add": ("add", ("a", "b"), "∂L/∂a = g,  ∂L/∂b = g"),
    "Mul": ("mul", ("a", "b"), "∂L/∂a = g·b,  ∂L/∂b = g·a"),
    "Pow": ("pow", ("x", "p"), "∂L/∂x = g·p·x^(p−1)"),
    "MatMul": ("matmul", ("a", "b"), "∂L/∂a = g @ bᵀ,  ∂L/∂b = aᵀ @ g"),
    "Sum": ("sum", ("x",), "∂L/∂x = g copied to every summed element"),
    "Max": ("max", ("x",), "∂L/∂x = g where x is the max, else 0"),
    "Reshape": ("reshape", ("x",), "∂L/∂x = g reshaped back"),
    "Permute": ("transpose", ("x",), "∂L/∂x = g with the axes put back"),
    "Index": ("index", ("x",), "∂L/∂x = g scattered back to the picked places"),
    "Exp": ("exp", ("x",), "∂L/∂x = g·y"),
    "Log": ("log", ("x",), "∂L/∂x = g/x"),
    "ReLU": ("relu", ("x",), "∂L/∂x = g·[x > 0]"),
    "Sigmoid": ("sigmoid", ("x",), "∂L/∂x = g·y(1 − y)"),
    "Tanh": ("tanh", ("x",), "∂L/∂x = g·(1 − y²)"),
    "LogSoftmax": ("log_softmax", ("x",), "∂L/∂x = g − softmax(x)·Σg"),
    "Conv2d": ("conv2d", ("x", "W", "b"), "∂L/∂x = g ⋆ᵀ W,  ∂L/∂W = g ⋆ x,  ∂L/∂b = Σ g"),
    "MaxPool2d": ("max_pool2d", ("x",), "∂L/∂x = g at each window's max"),
    "AvgPool2d": ("avg_pool2d", ("x",), "∂L/∂x = g/(kh·kw) to each window"),
    "AdaptiveAvgPool2d": ("adaptive_avg_pool2d", ("x",), "∂L/∂x = g/|bin| to each bin"),
}

@dataclass
class GraphOptions:
    """What to draw besides the target: the backward pass, variables' shapes, the seed, a model's input."""
    backward: bool = False
    shape: list = field(default_factory=list)  # ["w=4x3", ...]: an expression variable's shape
    seed: int = 0
    batch: int | None = None  # examples fed to a model (default 1)
    input_shape: str | None = None  # "C,H,W" for a model (default: the model's own)
    classes: int = 10  # a model's outputs


# -- the recorded graph ----------------------------------------------------------------------------
@dataclass
class Node:
    key: str  # DOT id
    kind: str  # op, param, variable, input, const
    name: str
    shape: tuple
    value: np.ndarray | None = None  # what this node computed or holds
    tensor: object = None  # a leaf Tensor: its .grad is read after backward
    formula: str = ""
    grad: np.ndarray | None = None
    inputs: list = field(default_factory=list)  # (input node, role) for ops


@dataclass
class Graph:
    title: str
    nodes: list
    backward: bool = False
    loss: str = ""


class _Observed:
    """Stands in for an operation class in a recorded ``_node``: notes the gradient the engine's
    backward pass hands to the operation (the engine keeps only leaves' gradients), then runs it."""

    def __init__(self, fn, node: Node):
        self.fn, self.node = fn, node

    def backward(self, ctx, grad):
        import numpy as np

        self.node.grad = np.array(grad, copy=True)
        return self.fn.backward(ctx, grad)


def record(root, names: dict, data_name: str, variables: bool = False) -> list[Node]:
    """The graph that leads to ``root``, inputs before the operations that use them.

    ``names`` maps ``id()`` of leaves (parameters, variables, labels) to their names; Tensors that
    need no gradient and have no name are the data (``data_name``). The engine does not record an
    operation whose inputs all lack gradients, so data reshaped before its first weight appears
    already reshaped, as the engine saw it.
    """
    from deepdive.scratch.tensor import Tensor

    nodes, made, expanded = [], {}, set()
    stack = [(root, False)]
    while stack:
        obj, ready = stack.pop()
        if ready:
            made[id(obj)] = _node_for(obj, f"n{len(nodes)}", names, data_name, variables, made)
            nodes.append(made[id(obj)])
            continue
        if id(obj) in expanded:
            continue
        expanded.add(id(obj))
        stack.append((obj, True))
        if isinstance(obj, Tensor) and obj._node is not None:
            stack.extend((x, False) for x in reversed(obj._node[2]) if x is not None and id(x) not in expanded)
    return nodes


def _node_for(obj, key, names, data_name, variables, made) -> Node:
    import numpy as np

    from deepdive.scratch.nn import Parameter
    from deepdive.scratch.tensor import Tensor

    if isinstance(obj, Tensor) and obj._node is not None:
        fn, ctx, inputs = obj._node
        name, roles, formula = OPS.get(fn.__name__, (fn.__name__.lower(), (), (fn.__doc__ or "").split("\n")[0]))
        node = Node(key, "op", name, obj.shape, obj.data, formula=formula)
        node.inputs = [(made[id(x)], roles[i] if i < len(roles) and len(inputs) > 1 else "")
                       for i, x in enumerate(inputs) if x is not None]
        obj._node = (_Observed(fn, node), ctx, inputs)  # harmless without backward: forward is done
        return node
    if isinstance(obj, Tensor):
        if id(obj) in names:
            kind = "param" if isinstance(obj, Parameter) else "variable" if variables else "input"
            return Node(key, kind, names[id(obj)], obj.shape, obj.data, tensor=obj)
        return Node(key, "input", data_name, obj.shape, obj.data, tensor=obj)
    array = np.asarray(obj)
    name = names.get(id(obj)) or (numbers_text(array) if array.size == 1 else "constant")
    return Node(key, "const", name, array.shape, array)


# -- models ----------------------------------------------------------------------------------------
def model_graph(name: str, options: "GraphOptions") -> Graph:
    """Build model ``name`` on the scratch engine, run one seeded batch, and record its graph."""
    import numpy as np

    import deepdive.scratch.nn as nn
    from deepdive.models.registry import build_model

    input_shape = _input_shape(options.input_shape, scratch_models()[name])
    batch = 1 if options.batch is None else options.batch
    if not 1 <= batch <= 64:
        raise UserError(f"--batch {batch} is invalid: give 1 to 64 (a graph needs few examples)")
    if not 1 <= options.classes <= 10_000:
        raise UserError(f"--classes {options.classes} is invalid: give 1 to 10000")
    if options.shape:
        raise UserError("--shape names an expression's variables: a model takes --input-shape C,H,W")
    saved = np.random.get_state()  # the engine draws weights and dropout masks from NumPy's global generator
    try:
        np.random.seed(options.seed)
        model = build_model(name, nn, nn.functional, input_shape, options.classes)  # train mode: dropout drawn
        x = np.random.default_rng(options.seed).standard_normal((batch, *input_shape)).astype(np.float32)
        from deepdive.scratch import Tensor
        x = Tensor(x)
        out = model(x)
        names = {id(p): n for n, p in model.named_parameters()}
        names[id(x)] = "x"
        root, loss = out, ""
        if options.backward:
            labels = np.arange(batch, dtype=np.int64) % options.classes
            names[id(labels)] = "labels"
            root = nn.functional.cross_entropy(out, labels)
            loss = f"L = cross_entropy(logits, labels {labels.tolist()[:8]}{'…' if batch > 8 else ''})"
        nodes = record(root, names, "x")
        if options.backward:
            root.backward()
    finally:
        np.random.set_state(saved)
    title = f"{TITLES[name]}: input {shape_text((batch, *input_shape))}, {options.classes} classes"
    return _with_leaf_grads(Graph(title, nodes, options.backward, loss))


def _input_shape(text: str | None, default: tuple) -> tuple:
    if text is None:
        return default
    parts = re.split(r"[,x]", text.strip())
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise UserError(f"--input-shape {text!r} is invalid: give C,H,W as three positive integers, e.g. 3,32,32")
    shape = tuple(int(p) for p in parts)
    if math.prod(shape) > MAX_EXAMPLE:
        raise UserError(f"--input-shape {text} has {math.prod(shape)} numbers per example: give at most "
                        f"{MAX_EXAMPLE} (a graph does not need large images)")
    return shape


# -- expressions -----------------------------------------------------------------------------------
def expression_graph(text: str, options: "GraphOptions") -> Graph:
    """Parse ``text`` with ``ast`` (a whitelist, never ``eval``), evaluate it on seeded random
    float64 variables that need gradients, and record the graph."""
    import numpy as np

    if options.input_shape is not None or options.batch is not None:
        raise UserError("--input-shape and --batch apply to models: an expression takes --shape NAME=AxB")
    tree = _parse(text)
    shapes = _shapes(options.shape)
    callees = _callees(tree)
    names = sorted((n.col_offset, n.id) for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in callees)
    variables = list(dict.fromkeys(name for _, name in names))  # in the order they are written
    unused = sorted(set(shapes) - set(variables))
    if unused:
        raise UserError(f"--shape {unused[0]}=... names no variable of the expression (it has: "
                        f"{', '.join(variables) or 'none'})")
    from deepdive.scratch import Tensor

    check_result_sizes(tree.body, {v: tuple(shapes.get(v, ())) for v in variables}, text)
    rng = np.random.default_rng(options.seed)
    env = {v: Tensor(np.asarray(rng.standard_normal(shapes.get(v, ()))), requires_grad=True) for v in variables}
    try:
        with np.errstate(all="ignore"):  # log(-1) is drawn as nan, not warned about
            result = _evaluate(tree.body, env)
    except (ValueError, TypeError, IndexError) as exc:
        reason = first_line(exc, None)
        raise UserError(f"cannot evaluate {text!r} ({_shapes_text(env)}): {reason}") from None
    if not isinstance(result, Tensor) or result._node is None:
        raise UserError(f"{text!r} has no operation on a variable to draw: e.g. 'relu(w @ x + b)'")
    root, loss = result, ""
    if options.backward and result.data.size != 1:
        root, loss = result.sum(), "L = sum of the expression's elements"
    elif options.backward:
        loss = "L = the expression"
    nodes = record(root, {id(t): v for v, t in env.items()}, "x", variables=True)
    if options.backward:
        with np.errstate(all="ignore"):
            root.backward()
    return _with_leaf_grads(Graph(f"{text}   ({_shapes_text(env)}, seed {options.seed})", nodes, options.backward, loss))


def _parse(text: str) -> ast.Expression:
    if not text.strip() or len(text) > MAX_EXPRESSION:
        raise UserError(f"unknown target {text[:60]!r}: give perceptron, mlp, article-cnn or an expression "
                        f"of at most {MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        reason = getattr(exc, "msg", None) or type(exc).__name__
        raise UserError(f"{text!r} is neither a model (perceptron, mlp, article-cnn) nor an expression: "
                        f"{reason}") from None
    if isinstance(tree.body, ast.Name):  # a bare name: most likely a model name mistyped
        from deepdive.config.specs import MODELS_SPECS
        if text in MODELS_SPECS:
            raise UserError(f"{text} runs on torch only, and the graph is the scratch engine's: give "
                            "perceptron, mlp or article-cnn")
        raise UserError(f"unknown target {text!r}: give perceptron, mlp, article-cnn or an expression "
                        f"such as 'relu(w @ x + b)'")
    allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Constant, ast.Attribute,
               ast.Load, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.MatMult, ast.Pow, ast.USub, ast.UAdd)
    if _depth(tree) > MAX_DEPTH:  # evaluation recurses: refuse before Python's recursion limit does
        raise UserError(f"the expression is nested more than {MAX_DEPTH} deep: give a shallower one")
    callees = _callees(tree)
    for node in ast.walk(tree):
        if not isinstance(node, allowed):
            raise UserError(f"{text!r}: {type(node).__name__} is not allowed in an expression "
                            f"(use + - * / @ **, unary -, .T and {', '.join(FUNCTIONS)})")
        if isinstance(node, ast.Constant) and (isinstance(node.value, bool) or
                                               not isinstance(node.value, (int, float))):
            raise UserError(f"{text!r}: {node.value!r} is not a number")
        if isinstance(node, ast.Attribute) and node.attr != "T":
            raise UserError(f"{text!r}: .{node.attr} is not allowed (only .T, the transpose)")
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                raise UserError(f"{text!r}: only these functions can be called: {', '.join(FUNCTIONS)}")
            if len(node.args) != 1 or node.keywords:
                raise UserError(f"{text!r}: {node.func.id}() takes exactly one argument")
        if isinstance(node, ast.Name) and node.id in FUNCTIONS and id(node) not in callees:
            raise UserError(f"{text!r}: {node.id} is a function, not a variable name")
    return tree


def _depth(tree) -> int:
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _callees(tree) -> set:
    """``id()`` of the names that are called (functions), as opposed to the variables."""
    return {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}


def _evaluate(node, env):
    """Walk the checked tree; Tensor operators record the graph as they compute."""
    from deepdive.scratch import Tensor
    from deepdive.scratch.nn import functional as F

    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.UnaryOp):
        x = _evaluate(node.operand, env)
        return -x if isinstance(node.op, ast.USub) else x
    if isinstance(node, ast.Attribute):  # .T
        x = _evaluate(node.value, env)
        if not isinstance(x, Tensor):
            raise TypeError(".T needs a tensor, not a number")
        return x.T
    if isinstance(node, ast.BinOp):
        a, b = _evaluate(node.left, env), _evaluate(node.right, env)
        if isinstance(node.op, ast.Pow):
            if not isinstance(a, Tensor) and not isinstance(b, Tensor):  # numbers: folded, as Python would
                try:
                    return math.pow(a, b)
                except (OverflowError, ValueError):
                    raise ValueError(f"{a:g} ** {b:g} is not a finite number") from None
            if not isinstance(a, Tensor) or isinstance(b, Tensor):
                raise TypeError("** needs a tensor raised to a number, e.g. x ** 2")
            return a ** b
        ops = {ast.Add: lambda: a + b, ast.Sub: lambda: a - b, ast.Mult: lambda: a * b,
               ast.Div: lambda: a / b, ast.MatMult: lambda: a @ b}
        return ops[type(node.op)]()
    name = node.func.id  # a whitelisted call
    x = _evaluate(node.args[0], env)
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}() needs a tensor, not a number")
    calls = {"relu": F.relu, "sigmoid": F.sigmoid, "tanh": F.tanh, "exp": Tensor.exp, "log": Tensor.log,
             "sum": Tensor.sum, "mean": Tensor.mean, "max": Tensor.max}
    return calls[name](x)


def _shapes(items: list[str]) -> dict:
    shapes = {}
    for item in items:
        name, _, dims = item.partition("=")
        name, dims = name.strip(), dims.strip()
        parts = dims.split("x") if dims else []
        if not name.isidentifier() or not parts or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise UserError(f"--shape {item!r} is invalid: give NAME=AxB with positive sizes, e.g. w=4x3 or x=3")
        shape = tuple(int(p) for p in parts)
        if math.prod(shape) > MAX_ELEMENTS:
            raise UserError(f"--shape {item} has {math.prod(shape)} elements: give at most {MAX_ELEMENTS}")
        shapes[name] = shape
    return shapes


def _shapes_text(env: dict) -> str:
    return ", ".join(f"{v} {shape_text(t.shape)}" for v, t in env.items()) or "no variables"


def _with_leaf_grads(graph: Graph) -> Graph:
    """After backward, leaves hold their gradient in ``.grad`` (operations got theirs on the way)."""
    if graph.backward:
        for node in graph.nodes:
            if node.tensor is not None and node.tensor.grad is not None:
                node.grad = node.tensor.grad
    return graph


