"""Pictures of what happens inside: optimizer paths (and, to come, curves, graphs, reports).

Computation (``paths``) imports no plotting library; drawing (``figures``) imports
matplotlib only when called, so ``deepdive --help`` stays fast.
"""


def percent(value) -> str:
    """A fraction (as every file holds accuracies) as people read it; '-' for none."""
    return "-" if value is None else f"{100 * value:.2f}%"
