import subprocess
import sys

import numpy as np

from deepdive.teach.rosenblatt import separable_blobs, train_mlp_xor, xor_points
from deepdive.scratch.perceptron import Rosenblatt


def test_converges_on_linearly_separable_data():
    x, y = separable_blobs(200, seed=3)
    p = Rosenblatt(2).fit(x, y, max_epochs=100)
    assert p.converged and p.epochs_run < 100
    assert p.accuracy(x, y) == 1.0


def test_learning_rule_is_mistake_driven():
    p = Rosenblatt(2)
    x, y = np.array([[1.0, 2.0]]), np.array([1])
    p.fit(x, y, max_epochs=1)
    assert p.w.tolist() == [1.0, 2.0] and p.b == 1.0  # one mistake: w += y·x, b += y
    p.fit(x, y, max_epochs=1)
    assert p.w.tolist() == [1.0, 2.0]  # no mistake, no change


def test_cannot_fit_xor_but_an_mlp_can():
    x, y = xor_points(100)
    p = Rosenblatt(2).fit(x, y, max_epochs=200)
    assert not p.converged and p.accuracy(x, y) <= 0.75
    assert train_mlp_xor(x, y)[0] == 1.0


def test_rosenblatt_command(cli):
    result = cli("rosenblatt")
    assert result.code == 0
    assert "converged after" in result.out and "did not converge" in result.out and "100.0%" in result.out
    data = cli("rosenblatt", "--json").json()
    assert data["separable"]["perceptron_converged"] and not data["xor"]["perceptron_converged"]
    assert data["xor"]["mlp_accuracy"] == 1.0


NO_TORCH = """
import importlib, pkgutil, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this check")
sys.meta_path.insert(0, Block())
import numpy as np
import deepdive.scratch as scratch
for info in pkgutil.walk_packages(scratch.__path__, "deepdive.scratch."):
    importlib.import_module(info.name)
import deepdive.scratch.nn as nn
from deepdive.models.registry import build_model
net = build_model("article-cnn", nn, nn.functional, (3, 12, 12), 10)
loss = nn.functional.cross_entropy(net(np.zeros((2, 3, 12, 12), np.float32)), np.array([1, 2]))
loss.backward()
assert "torch" not in sys.modules, "torch was imported"
print("ok")
"""


def test_scratch_never_imports_torch():
    done = subprocess.run([sys.executable, "-c", NO_TORCH], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
