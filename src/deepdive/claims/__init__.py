"""The article's claims as measured experiments: ``deepdive claims``.

The article states things about perceptrons, optimizers, backpropagation and
regularization; deepdive implements every formula it uses, so each statement
can be put to a small, seeded experiment and given a verdict:

- ``holds``: the measurement agrees with the claim as stated;
- ``holds under stated conditions``: it agrees only for some settings, and the
  result says which (momentum, for one, loses on some learning rates);
- ``does not hold``: the measurement contradicts it;
- ``not measured``: the experiment could not run here (CIFAR-10 missing).

This module is the registry only - names, the article's section, the claim
paraphrased - and imports nothing heavy; each topic module (``perceptron``,
``linear``, ``gradient_descent``, ``momentum``, ``adaptive``, ``backprop``,
``dropout_norm``, ``approximation``) holds the experiments and their figures
and is imported when a claim runs. Every claim has a ``fast`` setting, which
the test suite runs, so the claims and the code they measure cannot drift
apart.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

HOLDS = "holds"
CONDITIONAL = "holds under stated conditions"
FAILS = "does not hold"
NOT_MEASURED = "not measured"
VERDICTS = (HOLDS, CONDITIONAL, FAILS, NOT_MEASURED)


@dataclass
class Result:
    """What one experiment measured: its setup, its numbers, the verdict and why, in one line.

    ``key`` is the one figure the summary table shows; ``arrays`` holds what the
    figure draws and what the tests recompute independently (never written to
    claims.json).
    """

    setup: dict
    numbers: dict
    verdict: str
    explanation: str
    key: str = ""
    arrays: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}")


@dataclass(frozen=True)
class Claim:
    number: int
    name: str
    section: str  # the article's section the claim comes from
    text: str  # the claim, paraphrased
    module: str  # deepdive.claims.<module> holds the experiment ``<name with _>`` and ``plot_<name with _>``
    needs_data: bool = False  # reads CIFAR-10 from --data-dir

    @property
    def function(self) -> str:
        return self.name.replace("-", "_")

    def run(self, fast: bool = False, seed: int = 0, data_dir: str = "./data") -> Result:
        """The experiment; ``fast`` is the suite's small setting (a second or less)."""
        experiment = getattr(importlib.import_module(f"deepdive.claims.{self.module}"), self.function)
        if self.needs_data:
            return experiment(fast=fast, seed=seed, data_dir=data_dir)
        return experiment(fast=fast, seed=seed)

    def plot(self, result: Result, out) -> None:
        """One PNG of the experiment at ``out`` (written atomically)."""
        getattr(importlib.import_module(f"deepdive.claims.{self.module}"), f"plot_{self.function}")(result, out)


CLAIMS: dict[str, Claim] = {c.name: c for c in (
    Claim(1, "perceptron-xor", "The perceptron",
          "A single perceptron learns AND and OR but cannot learn XOR; a multi-layer perceptron with ReLU can.",
          "perceptron"),
    Claim(2, "linear-collapse", "Multi-layer perceptrons and activation functions",
          "Without an activation function, stacked linear layers are one linear layer (their matrices multiply "
          "into one), so such a network cannot learn XOR.", "linear"),
    Claim(3, "least-squares", "Gradient descent",
          "Gradient descent on a least-squares loss reaches the minimum that the closed form gives.",
          "gradient_descent"),
    Claim(4, "minibatch-variance", "Stochastic and mini-batch gradient descent",
          "A mini-batch gradient is a noisy estimate of the full gradient whose variance falls as 1/B with the "
          "batch size B.", "gradient_descent"),
    Claim(5, "momentum-zigzag", "Momentum",
          "Momentum damps the zigzag of gradient descent in narrow valleys and converges faster.", "momentum"),
    Claim(6, "momentum-forms", "Momentum",
          "The article's momentum (v = γv + η∇L; θ −= v) and torch's (v = γv + ∇L; θ −= ηv) take the same "
          "steps while η is constant and differ once a schedule changes η.", "momentum"),
    Claim(7, "adagrad-steps", "Adagrad",
          "Adagrad's effective step η/√G shrinks as squared gradients accumulate, and rarely active parameters "
          "take larger steps than frequently active ones.", "adaptive"),
    Claim(8, "adadelta-scale", "Adadelta",
          "Adadelta needs no hand-tuned global learning rate: its steps carry the units of θ.", "adaptive"),
    Claim(9, "adam-bias-correction", "Adam",
          "Adam's moment estimates start biased towards zero; bias correction makes the first steps the size "
          "intended.", "adaptive"),
    Claim(10, "backprop-linear", "Backpropagation",
          "Backpropagation is efficient (dynamic programming): its cost grows with the size of the graph, not with "
          "the number of paths through it.", "backprop"),
    Claim(11, "custom-layer", "Computational graphs",
          "Any differentiable function can be a layer: give its forward and its derivative, and backpropagation "
          "does the rest.", "backprop"),
    Claim(12, "dropout-eval", "Dropout",
          "Dropout is a training-time regularizer, switched off at test time: measured with dropout on (train "
          "mode), the same network's test accuracy is lower.", "dropout_norm", needs_data=True),
    Claim(13, "normalization", "Data normalization",
          "Normalizing the inputs with the data's own mean and standard deviation (zero mean, unit variance) "
          "helps training; the article's script normalizes CIFAR-10 with MNIST's statistics (0.1307, 0.3081).",
          "dropout_norm",
          needs_data=True),
    Claim(14, "approximation", "Universal approximation",
          "One hidden layer with enough units approximates a continuous function to any accuracy ε.",
          "approximation"),
)}


def claim(name: str) -> Claim:
    """The claim called ``name`` or numbered ``name`` (``5`` or ``momentum-zigzag``)."""
    if name in CLAIMS:
        return CLAIMS[name]
    by_number = {str(c.number): c for c in CLAIMS.values()}
    if name in by_number:
        return by_number[name]
    from deepdive.config.names import did_you_mean
    from deepdive.errors import UserError
    raise UserError(f"unknown claim {name!r}{did_you_mean(name, CLAIMS)}: give names or numbers 1-{len(CLAIMS)} "
                    f"(`deepdive claims --list` lists them)")
