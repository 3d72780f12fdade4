"""The recorded graph as Graphviz DOT, drawn the article's way: operations as boxes, data as labelled edges,
parameters standing out; SVG and PNG through the ``graphviz`` package and Graphviz's ``dot``, both imported
or looked for only when asked for."""
from __future__ import annotations

import shutil

from deepdive.errors import UserError, first_line

SHOWN_ELEMENTS = 16  # tensors up to this size show their numbers, larger ones a summary
STYLE = {  # how each kind of node is drawn: parameters stand out, as in the article
    "op": 'shape=box, style="rounded,filled", fillcolor="#e8eef7"',
    "param": 'shape=box3d, style=filled, fillcolor="#ffe08a"',
    "variable": 'shape=box, style=filled, fillcolor="#c9f0c9"',
    "input": 'shape=ellipse, style=filled, fillcolor="#eeeeee"',
    "const": 'shape=plaintext',
}


def shape_text(shape: tuple) -> str:
    return "x".join(str(s) for s in shape) if shape else "scalar"

def numbers_text(a) -> str:
    """Up to SHOWN_ELEMENTS values as a nested list, 4 significant digits (parseable back)."""
    import numpy as np

    a = np.asarray(a) + 0  # relu's −0. shows as 0.
    if a.ndim == 0:
        return f"{a.item():.4g}"
    return np.array2string(a, precision=4, separator=", ", floatmode="maxprec", max_line_width=72)

def summary_text(a) -> str:
    """A tensor for a label: its numbers when small, else shape, L2 norm and its first three numbers."""
    import numpy as np

    a = np.asarray(a) + 0
    if a.size <= SHOWN_ELEMENTS:
        return numbers_text(a)
    first = ", ".join(f"{v:.4g}" for v in a.reshape(-1)[:3])
    return f"{shape_text(a.shape)}, norm {np.linalg.norm(a.astype(np.float64)):.4g}, first {first}, …"

def label(node, backward: bool) -> str:
    """Name and shape; with --backward also the local gradient formula, the values (when small)
    and the gradient received."""
    small = node.value.size <= SHOWN_ELEMENTS
    if node.kind == "const" and small and node.name != "labels":
        return node.name if node.value.size == 1 else f"{node.name}\n{numbers_text(node.value)}"
    lines = [node.name, shape_text(node.shape)]
    if backward:
        y = "y" if node.kind == "op" else node.name
        if node.kind == "op":
            lines.append(node.formula)
        if small:
            lines.append(f"{y} = {numbers_text(node.value)}")
        if node.grad is not None:
            lines.append(f"∂L/∂{y} = {summary_text(node.grad)}")
    return "\n".join(lines)

def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

def to_dot(graph) -> str:
    """The graph in Graphviz's DOT language: one line per node (class= its kind), one per data edge."""
    title = graph.title
    if graph.backward:
        title += f"\n{graph.loss};  g = ∂L/∂y, the gradient arriving at an operation from above"
    lines = ["digraph graph_ {",
             # left to right reads like the article's figures; a long chain (a whole model) reads better
             # top to bottom than as one strip many screens wide; dpi 150: small graphs still >= 800 px
             f"  label={_quote(title)}; labelloc=t; rankdir={'TB' if len(graph.nodes) > 12 else 'LR'}; "
             "fontname=Helvetica; dpi=150;",
             "  node [fontname=Helvetica, fontsize=11]; edge [fontname=Helvetica, fontsize=9];",
             "  // operations: rounded boxes; parameters: yellow 3-D boxes; variables: green; data: grey ellipses"]
    for node in graph.nodes:
        lines.append(f"  {node.key} [label={_quote(label(node, graph.backward))}, class={node.kind}, "
                     f"{STYLE[node.kind]}];")
    for node in graph.nodes:
        for source, role in node.inputs:
            text = f"{role}: {shape_text(source.shape)}" if role else shape_text(source.shape)
            lines.append(f"  {source.key} -> {node.key} [label={_quote(text)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"

def render(dot: str, fmt: str) -> bytes:
    """SVG or PNG bytes from DOT through the ``graphviz`` package and Graphviz's ``dot`` program."""
    try:
        import graphviz
    except ImportError:
        raise UserError(f"--format {fmt} needs the graphviz Python package: pip install graphviz "
                        "(or use --format dot)") from None
    if shutil.which("dot") is None:
        raise UserError(f"--format {fmt} needs Graphviz's dot program: apt-get install graphviz "
                        "(or use --format dot)")
    try:
        return graphviz.Source(dot).pipe(format=fmt)
    except (graphviz.ExecutableNotFound, graphviz.CalledProcessError) as exc:
        reason = first_line(exc, None)
        raise UserError(f"Graphviz's dot could not draw the graph ({reason[:200]}): use --format dot") from None

