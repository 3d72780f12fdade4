"""deepdive: the article "Deep Learning Deep Dive" as software.

Practice lives in the top-level modules (PyTorch); theory lives in
:mod:`deepdive.scratch` (NumPy only).
"""
__version__ = "0.1.0"
