"""The ``deepdive`` command: argparse subcommands mapped to plain function calls.

No training logic lives here. Exit codes: 0 done, 1 the run failed, 2 bad input
or usage (one line on stderr), 130/143 interrupted by SIGINT/SIGTERM.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import math
import signal
import sys

from deepdive.errors import Interrupted, RunFailed, UserError, WriteFailed
from deepdive.storage.files import output_file

log = logging.getLogger("deepdive")

# Subcommands whose parser and entry point live in their own module: ``add_arguments(parser)`` and
# ``run(args) -> exit code``. The modules import nothing heavy at import time (--help stays fast).
PLUGGED_COMMANDS: dict[str, tuple[str, str]] = {
    "graph": ("deepdive.viz.graph", "the computational graph of a model or an expression, as the article draws it"),
    "report": ("deepdive.viz.report", "RUN/report.html: one self-contained page with the run's figures and tables"),
    "compare": ("deepdive.viz.compare", "runs side by side: a table, overlaid curves, compare.png and compare.html"),
    "export": ("deepdive.inference.export", "a run's model as ONNX, TorchScript or an exported program, checked against PyTorch"),
    "claims": ("deepdive.claims.command", "the article's claims as seeded experiments: numbers and a verdict for each"),
}

# Options that steer the command rather than the run: never part of a TrainConfig.
COMMAND_OPTIONS = {"command", "quiet", "json", "overwrite", "config", "resume", "force", "print_config",
                   "nproc", "argv"}  # nproc, argv: the --nproc launcher (distributed.py)


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (exit 2) instead of usage + error, a "did you mean …?" for
    unknown names and flags, and no silent abbreviations (``--opt`` is a declared alias, not a prefix)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        sys.stderr.write(f"{self.prog}: error: {message}{self._suggestion(message)} (see {self.prog} --help)\n")
        raise SystemExit(2)

    def _suggestion(self, message: str) -> str:
        import re

        from deepdive.config.names import did_you_mean
        choice = re.search(r"invalid choice: '?([^' ]+)'? \(choose from (.*)\)", message)
        if choice:
            return did_you_mean(choice.group(1), [c.strip(" '") for c in choice.group(2).split(",")])
        unknown = re.search(r"unrecognized arguments: (.*)", message)
        if unknown:
            flags = [t.split("=")[0] for t in unknown.group(1).split() if t.startswith("--")]
            return did_you_mean(flags[0], self._all_flags()) if flags else ""
        return ""

    def _all_flags(self) -> list[str]:
        flags = []
        for action in self._actions:
            flags += action.option_strings
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    flags += [f for a in sub._actions for f in a.option_strings]
        return [f for f in flags if f.startswith("--")]


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} must be integers separated by commas, e.g. 64,256,256") from None
    return values


def _shape(text: str) -> list[int]:
    values = _int_list(text)
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"{text!r} must be three integers C,H,W, e.g. 3,32,32")
    return values


def _quiet_flag(p: argparse.ArgumentParser, default=argparse.SUPPRESS) -> None:
    p.add_argument("-q", "--quiet", action="store_true", default=default, help="only warnings and errors on stderr")


def _train_flags(p: argparse.ArgumentParser) -> None:
    """Training flags; defaults are SUPPRESSed so only flags actually given reach ``resolve_config``.

    Where the ecosystem (timm, torchvision's references) has a name, it is accepted beside ours.
    """
    from deepdive.config.names import DEVICES, ENGINES
    from deepdive.config.specs import DATASETS
    from deepdive.config.specs import MODELS
    from deepdive.config.names import OPTIMIZERS

    S = argparse.SUPPRESS
    p.add_argument("--config", default=S, metavar="JSON", help="start from a run's config.json; flags given override it")
    p.add_argument("--model", default=S, metavar="NAME",
                   help=f"model (default simplenet): {', '.join(MODELS)}, tv:<name> (torchvision) or timm:<name>")
    p.add_argument("--dataset", default=S, choices=list(DATASETS), help="dataset (default fashion-mnist)")
    p.add_argument("--data-dir", default=S, metavar="DIR", help="where the dataset lives (default ./data)")
    p.add_argument("--engine", default=S, choices=ENGINES, help="torch (default) or scratch, the from-scratch NumPy engine")
    p.add_argument("--optimizer", "--opt", dest="optimizer", default=S, choices=list(OPTIMIZERS),
                   help="optimizer (default adam)")
    p.add_argument("--lr", default=S, type=float,
                   help="learning rate η (default: the optimizer's, as torch's: adam 1e-3, sgd 0.01, adadelta 1.0, ...)")
    p.add_argument("--momentum", default=S, type=float, help="momentum γ (sgd: 0; momentum/nesterov: 0.9)")
    p.add_argument("--weight-decay", default=S, type=float,
                   help="weight decay λ on conv/linear weights (default: the optimizer's; adamw 0.01)")
    p.add_argument("--decay-norm-and-bias", default=S, action="store_true",
                   help="also decay biases and normalization weights")
    p.add_argument("-b", "--batch-size", default=S, type=int, help="mini-batch size (default 64)")
    p.add_argument("--epochs", default=S, type=int, help="passes over the training data (default 10)")
    p.add_argument("--seed", default=S, type=int, help="seed for data order, init and dropout (default 0)")
    p.add_argument("--device", default=S, choices=DEVICES, help="auto (default), cpu or cuda")
    p.add_argument("--threads", default=S, type=int, help="CPU threads for torch (default: see README, CPU threads)")
    p.add_argument("--limit-train", default=S, type=int, metavar="N", help="class-balanced subset of N training images")
    p.add_argument("--limit-test", default=S, type=int, metavar="N", help="class-balanced subset of N test images")
    p.add_argument("--image-size", default=S, type=int,
                   help="imagefolder: fit images to this square size (default 32; see --resize-mode)")
    from deepdive.config.names import RESIZE_MODES
    p.add_argument("--resize-mode", default=S, choices=RESIZE_MODES,
                   help="imagefolder (and predict): crop (default) scales the shorter side to --image-size and "
                        "keeps the centre; squash scales both sides, distorting the picture")
    p.add_argument("--normalization", default=S, choices=("dataset", "mnist"),
                   help="dataset's own mean/std (default) or the article's MNIST (0.1307, 0.3081)")
    p.add_argument("--article-exact", default=S, action="store_true",
                   help="simplenet: keep the article's ReLU on the logits (a defect, for reproduction)")
    p.add_argument("--no-download", dest="download", default=S, action="store_false",
                   help="cifar10: never download; fail if the data is missing")
    p.add_argument("--synthetic-shape", default=S, type=_shape, metavar="C,H,W",
                   help="synthetic: image shape (default 3,32,32)")
    p.add_argument("--synthetic-classes", default=S, type=int, help="synthetic: number of classes (default 10)")
    p.add_argument("--out", "--output", dest="out", default=S, metavar="DIR",
                   help="the run folder itself (default runs/<time>-<model>-<dataset>)")
    p.add_argument("--save-every", default=S, type=int, metavar="N", help="checkpoint every N epochs (default 1)")
    p.add_argument("--keep", "--checkpoint-hist", dest="keep", default=S, type=int, metavar="K",
                   help="keep checkpoints/epoch-NNN.safetensors of the last K epochs (default 0)")
    p.add_argument("--val-split", default=S, type=float, metavar="F",
                   help="hold out a stratified fraction F of train; best.safetensors then follows validation")
    p.add_argument("--grad-clip", "--clip-grad", dest="grad_clip", default=S, type=float, metavar="NORM",
                   help="clip the gradients' global L2 norm")
    p.add_argument("-j", "--workers", default=S, type=int,
                   help="DataLoader workers, used only when an image folder must be streamed (default 2)")
    p.add_argument("--strict", default=S, action="store_true",
                   help="imagefolder: refuse unreadable files instead of skipping them")
    p.add_argument("--max-image-mb", default=S, type=float, metavar="MB",
                   help="imagefolder: files larger than this are unreadable, never read (default 256)")
    p.add_argument("--no-figures", dest="figures", default=S, action="store_false",
                   help="skip RUN/figures/*.png at the end of the run (`deepdive report` draws them later)")
    p.add_argument("--svg", default=S, action="store_true", help="the run's figures as SVG too")
    p.add_argument("--log-every", default=S, type=float, metavar="SECONDS",
                   help="when the output is not a terminal, a progress line this often (default 30; 0: none)")
    p.add_argument("--tensorboard", default=S, action="store_true",
                   help="TensorBoard event files in RUN/tensorboard/ (pip install 'deepdive[tensorboard]')")
    p.add_argument("--divergence-factor", default=S, type=float, metavar="F",
                   help="fail the run when the loss exceeds F times the first step's loss (default 1000)")
    _fast_flags(p)
    _transfer_flags(p)
    _distributed_flags(p)


def _distributed_flags(p: argparse.ArgumentParser) -> None:
    """Data-parallel training (distributed.py); --nproc steers the command, the others are the run's."""
    S = argparse.SUPPRESS
    g = p.add_argument_group("several processes (torchrun + DistributedDataParallel; -b is the global batch)")
    g.add_argument("--nproc", default=None, type=int, metavar="N",
                   help="train in N processes on this machine, started by torchrun (one per GPU, or CPU slots)")
    g.add_argument("--sync-bn", default=S, action="store_true",
                   help="BatchNorm statistics of the global batch, not of each process's share")
    g.add_argument("--dist-timeout", default=S, type=float, metavar="SECONDS",
                   help="end the run when another process has not answered for this long (default 120)")


def _names(text: str) -> list:
    return [v.strip() for v in text.split(",") if v.strip()]


def _transfer_flags(p: argparse.ArgumentParser) -> None:
    S = argparse.SUPPRESS
    g = p.add_argument_group("torchvision/timm models and fine-tuning")
    g.add_argument("--small-input", default=S, action="store_true",
                   help="tv:/timm: models: a 3x3 stride-1 first convolution and no initial max-pool (32x32 images)")
    g.add_argument("--pretrained", default=S, action="store_true",
                   help="tv:/timm: models: the library's pretrained weights (cached; downloaded once when online)")
    g.add_argument("--weights", default=S, metavar="FILE",
                   help="tv:/timm: models: pretrained weights from this .safetensors or weights-only torch file")
    g.add_argument("--init-from", default=S, metavar="RUN", help="start from another run's weights "
                   "(the head is replaced when the classes differ)")
    g.add_argument("--freeze-backbone", default=S, action="store_true", help="train only the classifier head")
    g.add_argument("--unfreeze-after", default=S, type=int, metavar="E",
                   help="with --freeze-backbone: train the whole model after E epochs")
    g.add_argument("--head-lr", default=S, type=float, metavar="LR",
                   help="the head's learning rate (absolute); the rest of the model uses --lr")
    g.add_argument("--classes", default=S, type=_names, metavar="A,B,...",
                   help="train and test on these classes only (names or indices), in this order")


def _fast_flags(p: argparse.ArgumentParser) -> None:
    from deepdive.config.names import AUGMENTATIONS
    from deepdive.config.recipes import RECIPES
    from deepdive.config.names import SCHEDULES

    S = argparse.SUPPRESS
    g = p.add_argument_group("recipes, schedules and fast training (see `deepdive list` for recipes)")
    g.add_argument("--recipe", default=S, choices=list(RECIPES), help="a named preset; flags given override it")
    g.add_argument("--schedule", "--sched", dest="schedule", default=S, choices=SCHEDULES,
                   help="learning-rate schedule (default constant)")
    g.add_argument("--warmup", default=S, type=float, metavar="F", help="warm-up, as a fraction of training")
    g.add_argument("--warmup-epochs", default=S, type=float, metavar="E", help="warm-up, in epochs")
    g.add_argument("--decay-epochs", default=S, type=float, metavar="N", help="--sched step: decay every N epochs")
    g.add_argument("--decay-rate", default=S, type=float, metavar="R", help="--sched step: factor (default 0.1)")
    g.add_argument("--label-smoothing", "--smoothing", dest="label_smoothing", default=S, type=float, metavar="EPS")
    g.add_argument("--ema", "--model-ema-decay", dest="ema", default=S, type=float, metavar="DECAY",
                   help="evaluate an exponential moving average of the weights")
    g.add_argument("--augment", default=S, choices=AUGMENTATIONS, help="batched augmentation (default none)")
    g.add_argument("--crop-pad", default=S, type=int, metavar="PX", help="random-crop translation (default 2)")
    g.add_argument("--tta", default=S, choices=("none", "flip", "flip-shift"), help="test-time augmentation")
    g.add_argument("--widths", default=S, type=_int_list, metavar="W1,W2,...", help="fastnet block widths, e.g. 64,256,256")
    g.add_argument("--no-whiten", dest="whiten", default=S, action="store_false",
                   help="fastnet: a trainable first layer instead of frozen patch whitening")
    g.add_argument("--decoupled-wd", default=S, action="store_true", help="weight decay θ ← θ(1 − ηλ)")
    g.add_argument("--amp", default=S, action=argparse.BooleanOptionalAction,
                   help="bf16 autocast (CUDA, or a CPU with native bf16); --no-amp turns a recipe's off")
    g.add_argument("--channels-last", default=S, action=argparse.BooleanOptionalAction,
                   help="NHWC memory format (default: what the model declares)")
    g.add_argument("--compile", default=S, action="store_true", help="torch.compile the model")
    g.add_argument("--target-accuracy", default=S, type=float, metavar="A",
                   help="stop as soon as the test accuracy reaches A (a fraction, e.g. 0.612)")
    g.add_argument("--time-budget", default=S, type=float, metavar="SECONDS",
                   help="train for this long; the schedule follows the clock (not bit-reproducible)")
    g.add_argument("--evals-per-epoch", default=S, type=int, help="test evaluations per epoch with a target")


def build_parser() -> Parser:
    from deepdive.config.names import OPTIMIZERS

    parser = Parser(prog="deepdive", description="Train, evaluate and understand image classifiers "
                    "(the 'Deep Learning Deep Dive' article as software).")
    from deepdive.version import __version__

    _quiet_flag(parser, default=False)
    parser.add_argument("--version", action="version", version=f"deepdive {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    p = sub.add_parser("train", help="train a model; leaves a run folder")
    _train_flags(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.add_argument("--force", action="store_true", help="with --resume: accept flags that change the run")
    p.add_argument("--json", action="store_true", help="print only the summary, as one JSON object, on stdout")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved configuration (config.json's JSON object) on stdout and exit")

    p = sub.add_parser("evaluate", help="reload a run's model and measure it on test data")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--dataset", help="another dataset with the same classes and input shape")
    p.add_argument("--data-dir", help="where that dataset lives")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--per-class", action="store_true", help="also each class's accuracy")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")

    p = sub.add_parser("predict", help="top-K classes for image files with a run's model")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("images", metavar="IMAGE_OR_DIR", nargs="+", help="image files or folders of them")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--json", action="store_true", help='a list of {"file", "predictions": [...]} or {"file", "error"}')

    p = sub.add_parser("reproduce", help="the article's exact experiment, side by side with its published numbers")
    p.add_argument("experiment", choices=["article"], help="what to reproduce")
    p.add_argument("--data-dir", default="./data", help="holds cifar-10-batches-py/ (downloaded if missing)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--limit-train", type=int, metavar="N")
    p.add_argument("--limit-test", type=int, metavar="N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", metavar="SEEDS", help="one run per seed, e.g. 0-9: mean ± std of the accuracies and "
                   "losses, and where the article's 61.2%% falls (runs in OUT/seed-N)")
    p.add_argument("--jobs", type=int, default=1, help="with --seeds: runs at once, as separate processes (default 1)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--no-download", dest="download", action="store_false")
    p.add_argument("--out", metavar="DIR")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("parity", help="step torch and the from-scratch engine together; compare every number")
    p.add_argument("--model", default="simplenet", choices=["perceptron", "simplenet", "article-cnn"])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--optimizer", default="adam", choices=list(OPTIMIZERS))
    p.add_argument("--lr", type=float, help="learning rate (default: the optimizer's own, as `deepdive list` shows)")
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("-b", "--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print every step's differences as one JSON object")
    p.add_argument("--plot", action="store_true", help="the relative differences per step, log scale, as a PNG")
    p.add_argument("--out", metavar="FILE", help="the plot's file (implies --plot; default parity-MODEL.png here)")

    p = sub.add_parser("rosenblatt", help="Rosenblatt's perceptron on separable data and XOR, beside a backprop MLP")
    p.add_argument("--max-epochs", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.add_argument("--plot", action="store_true", help="the decision lines and the MLP's regions, as a PNG")
    p.add_argument("--out", metavar="FILE", help="the plot's file (implies --plot; default rosenblatt.png here)")

    p = sub.add_parser("optimizers", help="the article's optimizer figure: paths over 2-D surfaces, steps to tolerance")
    p.add_argument("--surface", default="quadratic", help="quadratic (the zigzag), rosenbrock, saddle or noisy")
    p.add_argument("--optimizers", default=None, metavar="A,B,...",
                   help="which (default all: sgd,momentum,nesterov,adagrad,adadelta,rmsprop,adam)")
    p.add_argument("--lr", type=float, help="one learning rate for all (default: each optimizer's own on the surface)")
    p.add_argument("--momentum", type=float, help="γ for momentum and nesterov (default: the surface's, 0.7 on quadratic, else 0.9)")
    p.add_argument("--steps", type=int, help="default: the surface's (300; rosenbrock 3000)")
    p.add_argument("--tol", type=float, help="f(θ) − f_min counted as converged (default 1e-4; noisy 1)")
    p.add_argument("--seed", type=int, default=0, help="the noisy surface's gradient noise")
    p.add_argument("--animate", action="store_true", help="a GIF in which the paths grow, instead of a PNG")
    p.add_argument("--out", metavar="FILE", help="default optimizers-SURFACE.png (.gif with --animate) here")
    p.add_argument("--json", action="store_true", help="the figures as one JSON object on stdout")

    for name, (module, summary) in PLUGGED_COMMANDS.items():  # commands that live beside what they do
        p = sub.add_parser(name, help=summary)
        importlib.import_module(module).add_arguments(p)

    p = sub.add_parser("list", help="models, datasets and optimizers")
    p.add_argument("--json", action="store_true")
    p.add_argument("--external", action="store_true", help="also every torchvision (and timm) model name")
    for p in sub.choices.values():
        _quiet_flag(p)  # -q after the subcommand too
    return parser


def parse_train_flags(argv: list[str]) -> dict:
    """The TrainConfig values that ``deepdive train ARGV`` gives (for scripts and benchmarks)."""
    return _config_flags(build_parser().parse_args(["train", *argv]))


def _config_flags(args: argparse.Namespace) -> dict:
    """The TrainConfig values the user's flags set (argparse SUPPRESSed the rest)."""
    return {k: v for k, v in vars(args).items() if k not in COMMAND_OPTIONS}


def cmd_train(args) -> int:
    from deepdive.viz.run_figures import write_run_figures
    from deepdive.config.resolve import resolve_config

    flags = _config_flags(args)
    if getattr(args, "nproc", None) is not None and not args.print_config:  # distributed: torchrun runs this command
        from deepdive.training.distributed import launch
        code = launch(args.argv, args.nproc, flags, getattr(args, "config", None), args.resume, args.force,
                      args.overwrite)
        if code is not None:
            return code
    if args.resume:
        from deepdive.training.resume import open_resume, resume_run
        for given, why in (("config", "the run's own config is used"), ("recipe", "a resumed run keeps its values: "
                            "give the ones to change as flags, with --force")):
            if hasattr(args, given):
                raise UserError(f"--{given} cannot be combined with --resume: {why}")
        if args.overwrite:
            raise UserError("--overwrite cannot be combined with --resume: a resumed run continues in its folder")
        run, cfg, differences = open_resume(args.resume, flags, force=args.force)
        if args.print_config:
            print(json.dumps(cfg.to_dict(), indent=2))
            return 0
        summary = resume_run(run, cfg, differences, figures=write_run_figures)
    else:
        from deepdive.training.setup import run_training
        from deepdive.storage.config_file import read_config_file
        cfg = resolve_config(flags, read_config_file(args.config) if getattr(args, "config", None) else None)
        if args.print_config:
            print(json.dumps(cfg.to_dict(), indent=2))
            return 0
        from deepdive.training.distributed import restarted_run
        restarted = restarted_run(cfg, "out" in flags)  # a worker torchrun restarted continues its run folder
        if restarted:
            from deepdive.training.resume import resume_run
            summary = resume_run(*restarted, figures=write_run_figures)
        else:
            summary = run_training(cfg, overwrite=args.overwrite, figures=write_run_figures)
    from deepdive.training.distributed import env_rank
    if env_rank() == 0:  # under torchrun, rank 0 alone reports
        _report(summary, args.json)
    return 0


def cmd_evaluate(args) -> int:
    from deepdive.inference.evaluate import evaluate_run
    from deepdive.training.threads import set_threads

    set_threads(None)
    result = evaluate_run(args.run_dir, args.dataset, args.data_dir, args.device, per_class=args.per_class)
    if args.json:
        print(strict_json(result))
        return 0
    print(f"{result['run']}: {result['dataset']}, {result['examples']} test images: "
          f"accuracy {100 * result['test_accuracy']:.2f}%, loss {result['test_loss']:.4f}")
    if args.per_class:
        width = max(len(r["class"]) for r in result["per_class"])
        print(f"  {'class':<{width}}  {'images':>6}  {'correct':>7}  accuracy")
        for r in result["per_class"]:
            shown = f"{100 * r['accuracy']:7.2f}%" if r["accuracy"] is not None else "      -"
            print(f"  {r['class']:<{width}}  {r['images']:>6}  {r['correct']:>7}  {shown}")
    return 0


def cmd_predict(args) -> int:
    from deepdive.inference.predict import predict_files
    from deepdive.training.threads import set_threads

    set_threads(None)
    results = predict_files(args.run_dir, args.images, args.top_k, args.device)
    predicted = sum(1 for r in results if "predictions" in r)
    if args.json:
        print(strict_json(results))
    else:
        for r in results:
            if "error" in r:
                print(f"{r['file']}: error: {r['error']}")
            else:
                tops = ", ".join(f"{p['class']} {100 * p['probability']:.1f}%" for p in r["predictions"])
                print(f"{r['file']}: {tops}")
    if predicted == 0:
        print("deepdive predict: error: no image could be predicted: give image files PIL can open",
              file=sys.stderr)
        return 2
    return 0


def cmd_reproduce(args) -> int:
    """``--recipe article`` with the reproduction's few flags, then the article's numbers beside the run's."""
    from deepdive.config.resolve import resolve_config
    from deepdive.config.recipes import ARTICLE
    from deepdive.storage.runs import RunDir
    from deepdive.training.setup import run_training
    from deepdive.viz.run_figures import write_run_figures

    flags = {"recipe": "article", "data_dir": args.data_dir, "epochs": args.epochs, "seed": args.seed,
             "device": args.device, "limit_train": args.limit_train, "limit_test": args.limit_test,
             "download": args.download}
    if args.seeds is not None:
        return _reproduce_seeds(args, {k: v for k, v in flags.items() if k != "seed"})
    if args.out:
        flags["out"] = args.out
    summary = run_training(resolve_config(flags), overwrite=args.overwrite, figures=write_run_figures)
    published = ARTICLE["published"]
    lines = ["epoch  article loss  this run: last 1,000-batch block  whole epoch"]
    for m in RunDir(summary["run"]).metrics():
        losses = published["train_losses"]
        article = f"{losses[m['epoch'] - 1]:.3f}" if m["epoch"] <= len(losses) else "   -"
        window = m.get("train_loss_last_block")
        shown = "-" if window is None else f"{window:.3f}"
        lines.append(f"{m['epoch']:5d}  {article:>12}  {shown:>30}  {m['train_loss']:11.3f}")
    lines.append("(the article's script prints the mean of each 1,000 batches, three lines an epoch, never "
                 "'Epoch: N | Loss': its published per-epoch losses cannot come from its printed code)")
    lines.append(f"test accuracy: article {100 * published['test_accuracy']:.1f}% (measured in train mode, "
                 f"dropout on); this run {100 * summary['test_accuracy']:.1f}% (eval mode), "
                 f"{100 * summary['test_accuracy_train_mode']:.1f}% (train mode, as the article measured)")
    summary["article"] = dict(published)
    return _print_table(lines, summary, args.json, f"run folder: {summary['run']}")


def _print_table(lines: list[str], result: dict, as_json: bool, where: str) -> int:
    """A reproduction's table: on stdout, or with --json on stderr beside the one JSON object on stdout."""
    if as_json:
        print("\n".join(lines), file=sys.stderr)
        print(strict_json(result))
    else:
        print("\n".join(lines))
        print(where)
    return 0


def _reproduce_seeds(args, flags: dict) -> int:
    """``reproduce article --seeds 0-9``: the article's recipe once per seed, as a distribution."""
    import time
    from pathlib import Path

    from deepdive.config.recipes import ARTICLE
    from deepdive.teach.article_seeds import distribution, format_distribution, parse_seeds, run_seeds

    seeds = parse_seeds(args.seeds)
    out = Path(args.out or f"runs/{time.strftime('%Y%m%d-%H%M%S')}-article-seeds")
    summaries = run_seeds(flags, seeds, out, args.jobs, args.overwrite)
    result = distribution(summaries, ARTICLE["published"])
    lines = format_distribution(result, ARTICLE["published"])
    from deepdive.storage.atomic import write_atomic
    write_atomic(out / "distribution.json", lambda tmp: Path(tmp).write_text(strict_json(result)))
    return _print_table(lines, result, args.json, f"runs and distribution.json: {out}")


def cmd_parity(args) -> int:
    import dataclasses

    from deepdive.teach.parity import format_report, run_parity
    from deepdive.training.threads import set_threads

    for flag, value in (("--steps", args.steps), ("--batch-size", args.batch_size)):
        if value <= 0:
            raise UserError(f"{flag} {value} is invalid: give a positive integer")
    if args.lr is not None and not args.lr > 0:
        raise UserError(f"--lr {args.lr} is invalid: give a positive number")
    out = output_file(args.out or f"parity-{args.model}.png", (".png",)) if args.plot or args.out else None
    set_threads(1)  # torch and NumPy BLAS threads on 2 cores fight; one thread each is faster here
    report = run_parity(args.model, args.steps, args.optimizer, args.dtype, lr=args.lr,
                        batch_size=args.batch_size, seed=args.seed)
    lines, ok = format_report(report, args.model, args.optimizer, args.dtype)
    if out:
        from deepdive.teach.parity import plot
        plot(report, out, f"parity: {args.model}, {args.optimizer}, {args.dtype}")
        lines.append(f"figure: {out}")
    if args.json:
        print("\n".join(lines), file=sys.stderr)
        print(json.dumps({"ok": ok, "model": args.model, "optimizer": args.optimizer, "dtype": args.dtype,
                          "steps": [dataclasses.asdict(d) for d in report]}))
    else:
        print("\n".join(lines))
    return 0 if ok else 1


def cmd_rosenblatt(args) -> int:
    from deepdive.teach.rosenblatt import fit_all, format_results, plot, run

    if args.max_epochs <= 0:
        raise UserError(f"--max-epochs {args.max_epochs} is invalid: give a positive integer")
    out = output_file(args.out or "rosenblatt.png", (".png",)) if args.plot or args.out else None
    fitted = fit_all(args.max_epochs, args.seed)
    results = run(args.max_epochs, args.seed, fitted)
    if out:
        plot(fitted, out)
        results["figure"] = str(out)
    if args.json:
        print(strict_json(results))
    else:
        print("\n".join(format_results(results, args.max_epochs)))
        if "figure" in results:
            print(f"figure: {results['figure']}")
    return 0


def cmd_optimizers(args) -> int:
    """Paths of the article's optimizers on a 2-D surface: a figure and steps-to-tolerance per optimizer."""
    from deepdive.viz.paths import OPTIMIZER_NAMES, momentum_verdict, run_paths, surface

    names = args.optimizers.split(",") if args.optimizers else list(OPTIMIZER_NAMES)
    if args.steps is not None and not 0 < args.steps <= 100_000:
        raise UserError(f"--steps {args.steps} is invalid: give 1 to 100000")
    for flag, value in (("--lr", args.lr), ("--tol", args.tol)):
        if value is not None and not 0 < value < float("inf"):
            raise UserError(f"{flag} {value} is invalid: give a positive number")
    if args.momentum is not None and not 0 <= args.momentum < 1:
        raise UserError(f"--momentum {args.momentum} is out of range: give a value in [0, 1)")
    s = surface(args.surface)
    out = output_file(args.out or f"optimizers-{args.surface}.{'gif' if args.animate else 'png'}",
                      (".gif",) if args.animate else (".png",))
    steps, tol = args.steps or s.steps, args.tol or s.tol
    paths = run_paths(args.surface, names, steps, tol, args.lr, args.momentum, args.seed)
    from deepdive.viz.figures import draw_paths
    draw_paths(s, paths, out, f"{args.surface}: {s.title}", tol, animate=args.animate)
    verdict = momentum_verdict(paths, steps)
    rows = [{"optimizer": p.optimizer, "lr": p.lr, "steps_to_tolerance": p.steps_to_tolerance,
             "final_loss": p.final_loss, "steps_taken": len(p.points) - 1} for p in paths]
    if args.json:
        print(strict_json({"surface": args.surface, "tol": tol, "steps": steps, "figure": str(out),
                           "optimizers": rows, "momentum_verdict": verdict}))
        return 0
    print(f"{args.surface}: {s.title}, start {s.start}, {steps} steps, tolerance f − f_min <= {tol:g}")
    print(f"  {'optimizer':<10} {'lr':>8} {'steps to tol':>13} {'final f − f_min':>16}")
    for r in rows:
        reached = str(r["steps_to_tolerance"]) if r["steps_to_tolerance"] is not None else "not reached"
        note = "" if r["steps_taken"] == steps else f"  (diverged after {r['steps_taken']} steps)"
        print(f"  {r['optimizer']:<10} {r['lr']:>8g} {reached:>13} {r['final_loss']:>16.3e}{note}")
    if verdict:
        print(verdict)
    print(f"figure: {out}")
    return 0


def cmd_list(args) -> int:
    from deepdive.config.specs import DATASETS
    from deepdive.config.specs import MODELS
    from deepdive.config.specs import EXTERNAL
    from deepdive.config.names import DEFAULT_LR, OPTIMIZERS
    from deepdive.config.recipes import RECIPES

    tables = {"models": {**MODELS, **EXTERNAL}, "datasets": DATASETS,
              "optimizers": {name: f"{text} (default lr {DEFAULT_LR[name]:g})" for name, text in OPTIMIZERS.items()},
              "recipes": {name: r["description"] for name, r in RECIPES.items()}}
    if args.external:
        from deepdive.config.specs import available
        tables["torchvision models (--model tv:<name>)"] = {f"tv:{n}": "" for n in available("tv")}
        try:
            tables["timm models (--model timm:<name>)"] = {f"timm:{n}": "" for n in available("timm")}
        except UserError as exc:
            tables["timm models (--model timm:<name>)"] = {"(not installed)": str(exc)}
    if args.json:
        tables["recipes"] = {name: {"description": r["description"], "values": r["values"],
                                    "cpu": r.get("cpu", {}), "cuda": r.get("cuda", {}), "reasons": r["reasons"]}
                             for name, r in RECIPES.items()}
        print(json.dumps(tables))
        return 0
    for title, table in tables.items():
        print(f"{title}:")
        width = max(len(k) for k in table)
        for name, text in table.items():
            print(f"  {name:<{width}}  {text}".rstrip())
    return 0


def _report(summary: dict, as_json: bool) -> None:
    if as_json:
        print(strict_json(summary))
        return
    if summary.get("already_completed"):
        print(f"{summary['run']} already completed {summary['epochs']} epoch(s): nothing to resume "
              f"(test accuracy {100 * summary['test_accuracy']:.2f}%)")
        return
    print(f"{summary['status']}: {summary['model']} on {summary['dataset']}, {summary['epochs']} epoch(s): "
          f"test accuracy {100 * summary['test_accuracy']:.2f}%, test loss {summary['test_loss']:.4f}, "
          f"{summary['images_per_second']:.0f} img/s on {summary['device']}")
    print(f"run folder: {summary['run']}")


def strict_json(obj) -> str:
    """JSON as the standard has it: a NaN or infinite figure (a model whose weights are NaN) becomes null,
    never the bare ``NaN`` that strict parsers reject."""
    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value
    return json.dumps(clean(obj), allow_nan=False)


def _quiet(exc: BaseException) -> bool:
    """An error another process of a distributed run reports for all (distributed.quiet): said once, not N times."""
    return bool(getattr(exc, "quiet", False))


def _printable(text: str) -> str:
    """File names that are not UTF-8 reach Python as lone surrogates: show their bytes as \\xNN."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "reproduce": cmd_reproduce, "parity": cmd_parity,
            "rosenblatt": cmd_rosenblatt, "optimizers": cmd_optimizers, "list": cmd_list}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what `train --nproc N` hands on to torchrun
    if not args.command:
        parser.print_help(sys.stderr)
        return 2
    # Only deepdive's own logger speaks at INFO: other libraries' INFO lines (torch's "FakeTensor cache
    # stats" at exit, when Ctrl-C interrupts its import before it configures its loggers) stay quiet.
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    log.setLevel(logging.WARNING if args.quiet else logging.INFO)
    try:
        if args.command in PLUGGED_COMMANDS:
            code = importlib.import_module(PLUGGED_COMMANDS[args.command][0]).run(args)
        else:
            code = COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers, not at interpreter exit
        return code
    except BrokenPipeError:  # `deepdive list | head -1`: the reader has all it wanted
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except UserError as exc:
        for line in (str(exc).splitlines() or [""]) if not _quiet(exc) else []:
            print(f"deepdive {args.command}: error: {_printable(line)}", file=sys.stderr)
        return 2
    except WriteFailed as exc:
        if args.command in ("train", "reproduce"):  # a run that started and could not finish
            if not _quiet(exc):
                print(f"deepdive {args.command}: run failed: {exc}", file=sys.stderr)
            return 1
        print(_printable(f"deepdive {args.command}: error: cannot write {exc.path} ({exc.reason}): choose another "
                         "--out"), file=sys.stderr)
        return 2
    except RunFailed as exc:
        if not _quiet(exc):
            print(f"deepdive {args.command}: run failed: {exc}", file=sys.stderr)
        return 1
    except Interrupted as exc:
        if not _quiet(exc):
            print(f"deepdive {args.command}: interrupted; the run folder records status 'interrupted'",
                  file=sys.stderr)
        return 143 if exc.signum == signal.SIGTERM else 130
    except KeyboardInterrupt:
        print(f"deepdive {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a path the OS refuses (too long, not a folder, ...): bad input, not a crash
        where = f" {exc.filename!r}" if exc.filename else ""
        print(_printable(f"deepdive {args.command}: error: cannot use{where}: {exc.strerror or exc}; "
                         "check the paths given"), file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
