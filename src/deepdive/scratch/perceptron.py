"""Rosenblatt's perceptron (1958): the classic mistake-driven learning rule, not gradient descent.

    decision:  ŷ = sign(wᵀx + b),  labels y ∈ {−1, +1}
    learning:  on each mistake (y·(wᵀx + b) <= 0):  w = w + y·x,  b = b + y

The perceptron convergence theorem: if the data are linearly separable, the
rule makes finitely many mistakes and stops. If they are not (XOR), it never
settles. A multi-layer perceptron trained by backpropagation fits XOR; see
``deepdive rosenblatt``.
"""
from __future__ import annotations

import numpy as np


class Rosenblatt:
    def __init__(self, n_features: int):
        self.w = np.zeros(n_features)
        self.b = 0.0
        self.epochs_run = 0
        self.converged = False

    def decision(self, x: np.ndarray) -> np.ndarray:
        return x @ self.w + self.b

    def predict(self, x: np.ndarray) -> np.ndarray:
        """sign(wᵀx + b) in {−1, +1} (a point on the boundary counts as −1)."""
        return np.where(self.decision(x) > 0, 1, -1)

    def fit(self, x: np.ndarray, y: np.ndarray, max_epochs: int = 1000, seed: int = 0) -> "Rosenblatt":
        """Sweep the data in a seeded order until an epoch makes no mistake, or ``max_epochs``."""
        y = np.asarray(y)
        if not set(np.unique(y)) <= {-1, 1}:
            raise ValueError("Rosenblatt's perceptron takes labels in {-1, +1}")
        rng = np.random.default_rng(seed)
        for epoch in range(1, max_epochs + 1):
            mistakes = 0
            for i in rng.permutation(len(y)):
                if y[i] * (x[i] @ self.w + self.b) <= 0:
                    self.w += y[i] * x[i]
                    self.b += y[i]
                    mistakes += 1
            self.epochs_run = epoch
            if mistakes == 0:
                self.converged = True
                break
        return self

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return float((self.predict(x) == y).mean())
