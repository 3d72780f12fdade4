"""`deepdive claims`: each claim's fast setting, its numbers checked against an independent computation
(closed forms, NumPy written out here), and the command's output (JSON, bad names, claims.json/PNGs/HTML)."""
import json
import math

import numpy as np
import pytest
from PIL import Image

from cifar_files import write_cifar
from conftest import assert_one_line_error
from deepdive.claims import CLAIMS, CONDITIONAL, FAILS, HOLDS, NOT_MEASURED


def run(name, **kwargs):
    return CLAIMS[name].run(fast=True, seed=0, **kwargs)


def test_registry_numbers_every_claim_once():
    assert [c.number for c in CLAIMS.values()] == list(range(1, 15))


def test_perceptron_learns_and_or_not_xor_and_an_mlp_does():
    from deepdive.claims.perceptron import POINTS, TABLES

    r = run("perceptron-xor")
    for name, y in TABLES.items():
        p = r.arrays["perceptrons"][name]
        accuracy = float((np.where(POINTS @ p.w + p.b > 0, 1, -1) == y).mean())  # sign(wᵀx + b), recomputed
        assert accuracy == r.numbers[f"perceptron_{name}_accuracy"]
        assert (accuracy == 1.0) == (name != "xor")
    assert r.numbers["perceptron_xor_accuracy"] <= 0.75 and not r.numbers["perceptron_xor_converged"]
    assert np.array_equal(r.arrays["mlp_predict"](POINTS), TABLES["xor"])
    assert r.verdict == HOLDS


def test_stacked_linear_layers_are_one_matrix():
    r = run("linear-collapse")
    w1, w2, w3 = r.arrays["weights"]
    b1, b2, b3 = r.arrays["biases"]
    direct = r.arrays["x"] @ np.linalg.multi_dot([w3, w2, w1]).T + (w3 @ w2 @ b1 + w3 @ b2 + b3)
    np.testing.assert_allclose(r.arrays["outputs"], direct, rtol=0, atol=1e-12)
    assert r.numbers["max_abs_difference_stacked_vs_collapsed"] <= 1e-12
    assert abs(r.numbers["xor_loss_without_activation"] - math.log(2)) < 1e-3  # a linear model's best on XOR
    assert r.numbers["xor_accuracy_without_activation"] < 1 and r.numbers["xor_accuracy_with_relu"] == 1
    assert r.verdict == HOLDS


def test_gradient_descent_reaches_the_least_squares_solution():
    r = run("least-squares")
    solution = np.linalg.lstsq(r.arrays["x"], r.arrays["y"], rcond=None)[0]
    assert np.linalg.norm(r.arrays["w"] - solution) <= 1e-8
    eigen = np.linalg.eigvalsh(r.arrays["x"].T @ r.arrays["x"])
    assert r.numbers["condition_number"] == pytest.approx(eigen[-1] / eigen[0])
    assert r.numbers["steps"] <= r.numbers["bound_steps"] and r.verdict == HOLDS


def test_minibatch_variance_follows_sigma2_over_b():
    r = run("minibatch-variance")
    x, y, w = r.arrays["x"], r.arrays["y"], r.arrays["w"]
    n = len(y)
    per_example = np.stack([xi * (xi @ w - yi) for xi, yi in zip(x, y)])
    sigma2 = np.mean(np.sum((per_example - per_example.mean(0)) ** 2, axis=1))
    for b, measured in zip(r.numbers["batch_sizes"], r.numbers["variance_measured"]):
        assert measured == pytest.approx(sigma2 / b * (n - b) / (n - 1), rel=0.25)  # 150 batches each
    assert -1.15 <= r.numbers["loglog_slope"] <= -0.85 and r.verdict == HOLDS


def _settled(losses, tol):
    above = [i for i, f in enumerate(losses) if not f <= tol]
    return 0 if not above else (None if above[-1] == len(losses) - 1 else above[-1] + 1)


def test_momentum_grid_matches_closed_forms_and_reports_a_win_and_a_loss():
    from deepdive.claims.momentum import GAMMA, TOL

    r = run("momentum-zigzag")
    steps = r.setup["max_steps"]
    for cell in r.numbers["grid"]:
        k, lr = cell["kappa"], cell["lr"]
        t = np.arange(steps + 1)  # gradient descent: x_t = (1 − η)^t, y_t = (1 − ηκ)^t
        with np.errstate(over="ignore"):
            gd = 0.5 * ((1 - lr) ** (2 * t) + k * (1 - lr * k) ** (2 * t))
        if np.isfinite(gd).all():
            assert cell["gd_steps"] == _settled(gd, TOL)
        theta, v, heavy = np.array([1.0, 1.0]), np.zeros(2), [0.5 * (1 + k)]
        for _ in range(steps):  # torch's heavy ball, written out
            v = GAMMA * v + theta * [1, k]
            theta = theta - lr * v
            heavy.append(0.5 * (theta[0] ** 2 + k * theta[1] ** 2))
        assert cell["momentum_steps"] == _settled(heavy, TOL)
    issue = r.numbers["issue_setting"]  # 50 steps of GD from (1, 1), κ = 25, η = 0.035
    assert issue["gd_final_loss"] == pytest.approx(0.5 * (0.965 ** 100 + 25 * 0.125 ** 100), rel=1e-9)
    assert issue["momentum_final_loss"] > issue["gd_final_loss"]
    assert r.numbers["counts"]["momentum"] and r.numbers["counts"]["gd"] and r.verdict == CONDITIONAL
    assert r.numbers["example_win"]["winner"] == "momentum" and r.numbers["example_loss"]["winner"] == "gd"


def test_article_and_torch_momentum_agree_at_constant_lr_and_differ_under_decay():
    r = run("momentum-forms")
    for name, lrs in (("constant", [0.035] * 50), ("linear_decay", [0.035 * (1 - t / 50) for t in range(50)])):
        theta_a, v_a, theta_t, v_t = np.ones(2), np.zeros(2), np.ones(2), np.zeros(2)
        for lr in lrs:
            v_a = 0.9 * v_a + lr * theta_a * [1, 25]
            theta_a = theta_a - v_a
            v_t = 0.9 * v_t + theta_t * [1, 25]
            theta_t = theta_t - lr * v_t
        np.testing.assert_allclose(r.numbers[f"{name}_final_article"], theta_a, atol=1e-12)
        np.testing.assert_allclose(r.numbers[f"{name}_final_torch"], theta_t, atol=1e-12)
    assert r.numbers["constant_max_difference"] <= 1e-12
    assert r.numbers["linear_decay_final_distance"] > 0.05 and r.verdict == HOLDS


def test_adagrad_effective_step_shrinks_and_rare_weights_step_further():
    r = run("adagrad-steps")
    g = r.arrays["gradients"]
    expected = r.arrays["lr"] / (np.sqrt(np.cumsum(g * g, axis=0)) + r.arrays["eps"])
    np.testing.assert_allclose(r.arrays["effective"], expected, rtol=1e-12)
    ratio = r.numbers["rare_over_frequent_step"]
    assert ratio["adagrad"] > 1 > ratio["sgd"] and r.verdict == HOLDS


def test_adadelta_needs_no_retuned_lr_where_gradients_beat_eps():
    r = run("adadelta-scale")
    rows = {row["scale"]: row for row in r.numbers["rows"]}
    assert rows[1e3]["sgd_diverged"]  # η·L·1000 > 2: gradient descent must diverge
    assert rows[1.0]["sgd_steps"] is not None
    assert abs(rows[1.0]["adadelta_steps"] - rows[1e3]["adadelta_steps"]) <= 5  # the same steps at any scale
    assert rows[1e-3]["adadelta_steps"] is None  # gradients ~ √ε: the invariance ends
    assert r.verdict == CONDITIONAL


def test_adam_bias_correction_first_steps():
    r = run("adam-bias-correction")
    t = np.arange(1, r.setup["steps"] + 1)
    formula = (1 - 0.9 ** t) / np.sqrt(1 - 0.999 ** t)
    np.testing.assert_allclose(r.arrays["uncorrected"][:, 2], formula, rtol=1e-6)  # |g| = 1e3: ε negligible
    np.testing.assert_allclose(r.arrays["corrected"][:, 2], 1.0, rtol=1e-6)
    assert r.numbers["first_m_over_g"] == pytest.approx([0.1] * 3)
    assert r.verdict == HOLDS


def test_backprop_counts_three_backward_calls_per_diamond():
    r = run("backprop-linear")
    for row in r.numbers["rows"]:
        x, product = 0.3, 1.0
        for _ in range(row["diamonds"]):  # ∂x'/∂x = σ'(x) + tanh'(x), multiplied along the chain
            s = 1 / (1 + math.exp(-x))
            product *= s * (1 - s) + 1 - math.tanh(x) ** 2
            x = s + math.tanh(x)
        assert row["gradient_backprop"] == pytest.approx(product, rel=1e-12)
        assert row["backward_calls"] == 3 * row["diamonds"] and row["paths"] == 2 ** row["diamonds"]
    assert r.verdict == HOLDS


def test_a_user_defined_function_passes_gradcheck_and_a_wrong_one_does_not():
    r = run("custom-layer")
    softplus = r.arrays["softplus"]
    from deepdive.scratch import Tensor
    x = Tensor(np.linspace(-3, 3, 7), requires_grad=True)
    softplus.apply(x).sum().backward()
    np.testing.assert_allclose(x.grad, 1 / (1 + np.exp(-np.linspace(-3, 3, 7))), rtol=1e-12)
    assert r.numbers["gradcheck_in_network"]["ok"] and not r.numbers["gradcheck_wrong_derivative"]["ok"]
    assert r.verdict == HOLDS


def test_one_hidden_layer_reaches_epsilon():
    from deepdive.claims.approximation import EPSILON

    r = run("approximation")
    grid = np.linspace(0, 1, 2001)
    for row in r.numbers["constructed"]:
        knots = np.linspace(0, 1, row["units"] + 1)
        interp = np.interp(grid, knots, np.sin(2 * np.pi * knots))  # the interpolant, without any network
        assert row["max_error"] == pytest.approx(np.abs(interp - np.sin(2 * np.pi * grid)).max(), abs=1e-12)
    assert r.numbers["units_enough_for_epsilon"] == math.ceil(math.pi / math.sqrt(2 * EPSILON))
    assert r.verdict == HOLDS


@pytest.fixture(scope="module")
def fake_cifar(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    write_cifar(root, per_batch=20)
    return root


def test_dropout_and_normalization_on_the_article_cnn(fake_cifar):
    import torch

    from deepdive.claims.dropout_norm import TRAIN_MODE_PASSES, _subsets

    r = run("dropout-eval", data_dir=str(fake_cifar))
    model, test = r.arrays["run"]["model"], r.arrays["run"]["test"]
    x = (test.images.double().numpy() / 255 - 0.1307) / 0.3081  # the article's MNIST normalization, by hand
    model.eval()
    with torch.no_grad():
        accuracy = (model(torch.from_numpy(x).float()).argmax(1) == test.labels).double().mean().item()
    assert r.numbers["eval_mode_accuracy"] == pytest.approx(accuracy)
    assert len(r.numbers["train_mode_accuracies"]) == TRAIN_MODE_PASSES
    gap, se = r.numbers["difference"], r.numbers["standard_error"]
    assert r.verdict == (HOLDS if gap > 0 and gap > 2 * se else FAILS)

    r = run("normalization", data_dir=str(fake_cifar))
    images = _subsets(str(fake_cifar), True, 0)[1].images.double().numpy() / 255
    assert r.numbers["mnist"]["input_mean"] == pytest.approx(((images - 0.1307) / 0.3081).mean(), abs=1e-5)
    own = (images - np.array(r.numbers["dataset"]["mean"])[:, None, None]) / np.array(r.numbers["dataset"]["std"])[
        :, None, None]
    assert r.numbers["dataset"]["input_mean"] == pytest.approx(own.mean(), abs=1e-5)
    assert r.verdict in (HOLDS, CONDITIONAL, FAILS)


def test_missing_cifar_is_not_measured_with_the_command_to_get_it(tmp_path):
    r = run("normalization", data_dir=str(tmp_path))
    assert r.verdict == NOT_MEASURED and "deepdive train --dataset cifar10" in r.explanation


def test_json_prints_one_object(cli):
    result = cli("claims", "adam-bias-correction", "9", "--fast", "--json")
    assert result.code == 0, result.err
    report = result.json()
    assert [c["name"] for c in report["claims"]] == ["adam-bias-correction"]
    claim = report["claims"][0]
    assert set(claim) >= {"number", "section", "claim", "setup", "numbers", "verdict", "explanation", "seconds"}
    assert claim["verdict"] == HOLDS and report["verdicts"] == {"adam-bias-correction": HOLDS}


def test_unknown_claim_is_one_line_with_a_suggestion(cli):
    assert_one_line_error(cli("claims", "momentum-zigzg"), "unknown claim", "did you mean momentum-zigzag")


def test_out_writes_json_pngs_and_a_self_contained_page(cli, tmp_path):
    out = tmp_path / "claims"
    result = cli("claims", "backprop-linear", "dropout-eval", "--fast", "--plot", "--out", out,
                 "--data-dir", tmp_path / "none")
    assert result.code == 0, result.err
    assert "VERDICT" not in result.out and "verdict:  HOLDS" in result.out and "not measured" in result.out
    report = json.loads((out / "claims.json").read_text())
    assert [c["verdict"] for c in report["claims"]] == [HOLDS, NOT_MEASURED]
    for claim in report["claims"]:
        assert Image.open(claim["figure"]).format == "PNG"
    page = (out / "claims.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "backprop-linear" in page and "http" not in page
