"""`deepdive optimizers`: paths stepped by deepdive.scratch's optimizers, checked against torch.optim and
closed forms, and the figure they draw."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, assert_one_line_error
from deepdive.training.optim import build_optimizer
from deepdive.viz.paths import OPTIMIZER_NAMES, SURFACES, gradients, run_path


def torch_path(name, s, steps, lr, momentum, seed=0):
    theta = torch.tensor(s.start, dtype=torch.float64, requires_grad=True)
    if name not in ("momentum", "nesterov"):
        momentum = None
    elif momentum is None:
        momentum = s.momentum
    optimizer = build_optimizer(name, [theta], lr, momentum)  # torch.optim
    grad, points = gradients(s, seed), [theta.detach().numpy().copy()]
    for _ in range(steps):
        theta.grad = torch.from_numpy(grad(theta.detach().numpy()))
        optimizer.step()
        points.append(theta.detach().numpy().copy())
    return np.array(points)


@pytest.mark.parametrize("surface", list(SURFACES))
@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_each_path_is_the_one_torch_optim_takes(surface, name):
    s = SURFACES[surface]
    path = run_path(name, s, 60, 1e-4)
    np.testing.assert_allclose(path.points, torch_path(name, s, 60, s.lr[name], None), rtol=1e-10, atol=1e-12)


def test_gradient_descent_on_the_quadratic_follows_its_closed_form():
    """θ_k = ((1 − η)^k x0, (1 − 25η)^k y0): the path, the losses and the first step under tolerance."""
    s, lr, tol = SURFACES["quadratic"], 0.07, 1e-4
    path = run_path("sgd", s, 200, tol, lr)
    k = np.arange(201)
    x, y = (1 - lr) ** k * s.start[0], (1 - 25 * lr) ** k * s.start[1]
    np.testing.assert_allclose(path.points, np.stack([x, y], 1), rtol=1e-12, atol=1e-300)
    losses = 0.5 * (x ** 2 + 25 * y ** 2)
    np.testing.assert_allclose(path.losses, losses, rtol=1e-12, atol=1e-300)
    assert path.steps_to_tolerance == int(np.argmax(losses <= tol)) == 80
    assert abs(path.points[1, 1]) > 0 > path.points[1, 1] * path.points[2, 1]  # y changes sign: the zigzag


def test_optimizers_command_measures_momentum_beating_gradient_descent(cli, tmp_path):
    out = tmp_path / "q.png"
    result = cli("optimizers", "--surface", "quadratic", "--out", out, "--json")
    assert result.code == 0, result.err
    report = result.json()
    steps = {r["optimizer"]: r["steps_to_tolerance"] for r in report["optimizers"]}
    assert steps["momentum"] < steps["sgd"] == 94
    assert "holds for these settings" in report["momentum_verdict"]
    for row in report["optimizers"]:  # each final figure is f − f_min recomputed at the path's end
        path = run_path(row["optimizer"], SURFACES["quadratic"], report["steps"], report["tol"])
        assert row["final_loss"] == pytest.approx(SURFACES["quadratic"].f(path.points[-1]), rel=1e-12, abs=1e-300)
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (1200, 540)
    text = cli("optimizers", "--out", tmp_path / "t.png").out
    assert "momentum: 35 steps to the tolerance, gradient descent: 94 steps" in text


def test_the_claim_is_reported_failing_where_it_fails(cli, tmp_path):
    result = cli("optimizers", "--lr", "0.07", "--momentum", "0.9", "--optimizers", "sgd,momentum",
                 "--out", tmp_path / "f.png", "--json")
    report = result.json()
    steps = {r["optimizer"]: r["steps_to_tolerance"] for r in report["optimizers"]}
    assert steps == {"sgd": 80, "momentum": 118}  # momentum dips under the tolerance at 89, settles at 118
    assert "does NOT hold" in report["momentum_verdict"]


def test_animate_writes_a_gif_of_growing_paths(cli, tmp_path):
    out = tmp_path / "a.gif"
    assert cli("optimizers", "--optimizers", "sgd,momentum", "--steps", "10", "--animate", "--out", out).code == 0
    with Image.open(out) as image:
        assert image.format == "GIF" and image.n_frames == 11  # the start, then one frame per step
        image.seek(0)
        first = np.asarray(image.convert("RGB")).copy()
        image.seek(10)
        assert not np.array_equal(first, np.asarray(image.convert("RGB")))


def test_bad_input_is_one_line(cli, tmp_path):
    assert_one_line_error(cli("optimizers", "--surface", "quadratc"), "unknown surface", "did you mean quadratic")
    assert_one_line_error(cli("optimizers", "--optimizers", "sgd,adamx"), "unknown optimizer 'adamx'")
    assert_one_line_error(cli("optimizers", "--lr", "-1"), "--lr -1.0 is invalid")
    assert_one_line_error(cli("optimizers", "--steps", "0"), "--steps 0 is invalid")
    assert_one_line_error(cli("optimizers", "--out", tmp_path / "o.txt"), "must end in .png")
    assert_one_line_error(cli("optimizers", "--animate", "--out", tmp_path / "o.png"), "must end in .gif")
    assert_one_line_error(cli("optimizers", "--out", tmp_path / "none" / "o.png"), "does not exist")
    (tmp_path / "d.png").mkdir()
    assert_one_line_error(cli("optimizers", "--out", tmp_path / "d.png"), "is a folder")
    assert_one_line_error(cli("rosenblatt", "--out", tmp_path / "none" / "r.png"), "does not exist")
    assert not (tmp_path / "none").exists()


def test_help_does_not_import_matplotlib():
    code = "import sys\nfrom deepdive.cli import build_parser\nbuild_parser()\nassert 'matplotlib' not in sys.modules"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
