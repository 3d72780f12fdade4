"""Pictures of what happens inside: optimizer paths (and, to come, curves, graphs, reports).

Computation (``paths``) imports no plotting library; drawing (``figures``) imports
matplotlib only when called, so ``deepdive --help`` stays fast.
"""
