"""The size of every result of a ``deepdive graph`` expression, worked out from shapes alone before anything is
computed: a cap on each variable (``--shape``) does not bound ``w @ w.T`` (20,000x1 gives 400 million numbers)
or ``x + y`` of a column and a row."""
from __future__ import annotations

import ast
import math

from deepdive.errors import UserError

MAX_RESULT = 4_000_000  # numbers per intermediate result: a graph to look at, not a benchmark


def check_result_sizes(tree, shapes: dict, text: str) -> None:
    """Every intermediate result's shape worked out from the variables' shapes alone, before anything is
    computed: one past ``MAX_RESULT`` numbers is refused. Shapes that do not fit each other are left to the
    evaluation, which says why."""
    import numpy as np

    def shape(node) -> tuple:
        if isinstance(node, ast.Constant):
            return ()
        if isinstance(node, ast.Name):
            return shapes[node.id]
        if isinstance(node, ast.UnaryOp):
            return shape(node.operand)
        if isinstance(node, ast.Attribute):
            return tuple(reversed(shape(node.value)))
        if isinstance(node, ast.Call):
            inner = shape(node.args[0])
            return () if node.func.id in ("sum", "mean", "max") else inner
        a, b = shape(node.left), shape(node.right)
        if isinstance(node.op, ast.Pow):
            out = a
        elif isinstance(node.op, ast.MatMult):
            out = matmul_shape(a, b)
        else:
            out = tuple(np.broadcast_shapes(a, b))
        size = math.prod(out)
        if size > MAX_RESULT:
            raise UserError(f"{text!r} would compute a result of shape {out} ({size:,} numbers; "
                            f"{shapes_text(shapes)}): give smaller --shape values, at most {MAX_RESULT:,} "
                            "numbers per result")
        return out

    try:
        shape(tree)
    except ValueError:  # shapes that do not fit: the evaluation names the operation
        return


def matmul_shape(a: tuple, b: tuple) -> tuple:
    """The shape of ``a @ b`` (NumPy's rules: a vector is a row on the left, a column on the right)."""
    import numpy as np

    if not a or not b:
        raise ValueError("@ needs arrays")
    left, right = ((1,) + a if len(a) == 1 else a), (b + (1,) if len(b) == 1 else b)
    if left[-1] != right[-2]:
        raise ValueError("inner sizes differ")
    out = tuple(np.broadcast_shapes(left[:-2], right[:-2])) + (left[-2], right[-1])
    if len(b) == 1:
        out = out[:-1]
    if len(a) == 1:
        out = out[:-2] + out[-1:] if len(b) > 1 else out[:-1]
    return out


def shapes_text(shapes: dict) -> str:
    return ", ".join(f"{k} {'x'.join(map(str, v)) or 'scalar'}" for k, v in shapes.items())
