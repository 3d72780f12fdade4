"""``deepdive graph``: the computational graph of a model or an expression, as the article draws it."""
from __future__ import annotations

import sys
from pathlib import Path

from deepdive.viz.graph import FUNCTIONS, MODEL_TARGETS

HELP = "the computational graph of a model or an expression, as the article draws it"
OPTIONS = ("backward", "shape", "seed", "batch", "input_shape", "classes")


def add_arguments(parser) -> None:
    parser.add_argument("target", metavar="TARGET",
                        help="perceptron, mlp (the article's SimpleNet), article-cnn, or an expression such as "
                             "'relu(w @ x + b)' (+ - * / @ **, unary -, .T, " + ", ".join(FUNCTIONS) + ")")
    parser.add_argument("--backward", action="store_true",
                        help="run backward too: each node's local gradient formula and the gradient it received")
    parser.add_argument("--format", choices=("dot", "svg", "png"),
                        help="default dot (or the --out file's suffix); svg and png need Graphviz")
    parser.add_argument("--out", metavar="FILE", help="default: DOT on stdout, graph-TARGET.svg/png here")
    parser.add_argument("--shape", action="append", default=[], metavar="NAME=AxB",
                        help="an expression variable's shape, e.g. w=4x3 (repeatable; default scalar)")
    parser.add_argument("--seed", type=int, default=0, help="random variables, weights, inputs and dropout")
    parser.add_argument("--batch", type=int, help="examples fed to a model (default 1)")
    parser.add_argument("--input-shape", metavar="C,H,W",
                        help="a model's input (default 1,28,28 as Fashion-MNIST; article-cnn 3,32,32)")
    parser.add_argument("--classes", type=int, default=10, help="a model's outputs (default 10)")


def run(args) -> int:
    from deepdive.viz.graph import GraphOptions, expression_graph, model_graph
    from deepdive.viz.graph_dot import render, to_dot

    options = GraphOptions(**{name: getattr(args, name) for name in OPTIONS})
    fmt = args.format or _format_from_suffix(args.out)
    if args.out:
        from deepdive.storage.files import output_file
        output_file(args.out, (f".{fmt}",))  # the name says the format written; the folder is writable
    if args.target in MODEL_TARGETS:
        graph = model_graph(MODEL_TARGETS[args.target], options)
    else:
        graph = expression_graph(args.target, options)
    dot = to_dot(graph)
    if fmt == "dot" and not args.out:
        sys.stdout.write(dot)
        return 0
    data = dot.encode() if fmt == "dot" else render(dot, fmt)
    out = Path(args.out or f"graph-{args.target if args.target in MODEL_TARGETS else 'expression'}.{fmt}")
    from deepdive.storage.atomic import write_bytes_atomic
    write_bytes_atomic(out, data)
    print(f"graph: {out} ({len(graph.nodes)} nodes)")
    return 0


def _format_from_suffix(out: str | None) -> str:
    suffix = Path(out).suffix.lower() if out else ""
    return {".svg": "svg", ".png": "png"}.get(suffix, "dot")

