"""The flags of a training run (``deepdive train``): each is a ``TrainConfig`` field. Defaults are suppressed, so
only the flags given reach ``config.resolve.resolve_config`` (defaults < recipe < --config < flags)."""
from __future__ import annotations

import argparse

from deepdive.commands.parser import Parser, int_list, names, shape
from deepdive.config.names import AUGMENTATIONS, DEVICES, OPTIMIZERS, RESIZE_MODES, SCHEDULES, TTA_MODES
from deepdive.config.recipes import RECIPES
from deepdive.config.specs import DATASETS, ENGINES, MODELS

# Options that steer the command rather than the run: never part of a TrainConfig.
COMMAND_OPTIONS = {"command", "quiet", "json", "overwrite", "config", "resume", "force", "print_config",
                   "nproc", "argv"}  # nproc, argv: the --nproc launcher (training/ddp)


def add_train_flags(p: argparse.ArgumentParser) -> None:
    """Training flags; defaults are SUPPRESSed so only flags actually given reach ``resolve_config``.

    Where the ecosystem (timm, torchvision's references) has a name, it is accepted beside ours.
    """
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
    _data_flags(p)
    _run_flags(p)
    _fast_flags(p)
    _transfer_flags(p)
    _distributed_flags(p)


def _data_flags(p: argparse.ArgumentParser) -> None:
    S = argparse.SUPPRESS
    p.add_argument("--limit-train", default=S, type=int, metavar="N", help="class-balanced subset of N training images")
    p.add_argument("--limit-test", default=S, type=int, metavar="N", help="class-balanced subset of N test images")
    p.add_argument("--image-size", default=S, type=int,
                   help="imagefolder: fit images to this square size (default 32; see --resize-mode)")
    p.add_argument("--resize-mode", default=S, choices=RESIZE_MODES,
                   help="imagefolder (and predict): crop (default) scales the shorter side to --image-size and "
                        "keeps the centre; squash scales both sides, distorting the picture")
    p.add_argument("--normalization", default=S, choices=("dataset", "mnist"),
                   help="dataset's own mean/std (default) or the article's MNIST (0.1307, 0.3081)")
    p.add_argument("--article-exact", default=S, action="store_true",
                   help="simplenet: keep the article's ReLU on the logits (a defect, for reproduction)")
    p.add_argument("--no-download", dest="download", default=S, action="store_false",
                   help="cifar10: never download; fail if the data is missing")
    p.add_argument("--synthetic-shape", default=S, type=shape, metavar="C,H,W",
                   help="synthetic: image shape (default 3,32,32)")
    p.add_argument("--synthetic-classes", default=S, type=int, help="synthetic: number of classes (default 10)")


def _run_flags(p: argparse.ArgumentParser) -> None:
    """Where the run goes and what it leaves there."""
    S = argparse.SUPPRESS
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


def _distributed_flags(p: argparse.ArgumentParser) -> None:
    """Data-parallel training (training/ddp/); --nproc steers the command, the others are the run's."""
    S = argparse.SUPPRESS
    g = p.add_argument_group("several processes (torchrun + DistributedDataParallel; -b is the global batch)")
    g.add_argument("--nproc", default=None, type=int, metavar="N",
                   help="train in N processes on this machine, started by torchrun (one per GPU, or CPU slots)")
    g.add_argument("--sync-bn", default=S, action="store_true",
                   help="BatchNorm statistics of the global batch, not of each process's share")
    g.add_argument("--dist-timeout", default=S, type=float, metavar="SECONDS",
                   help="end the run when another process has not answered for this long (default 120)")


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
    g.add_argument("--classes", default=S, type=names, metavar="A,B,...",
                   help="train and test on these classes only (names or indices), in this order")


def _fast_flags(p: argparse.ArgumentParser) -> None:

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
    g.add_argument("--tta", default=S, choices=TTA_MODES, help="test-time augmentation")
    g.add_argument("--widths", default=S, type=int_list, metavar="W1,W2,...", help="fastnet block widths, e.g. 64,256,256")
    g.add_argument("--no-whiten", dest="whiten", default=S, action="store_false",
                   help="fastnet: a trainable first layer instead of frozen patch whitening")
    g.add_argument("--no-identity-init", dest="identity_init", default=S, action="store_false",
                   help="fastnet: PyTorch's default init for every convolution instead of the identity (dirac)")
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


def config_flags(args: argparse.Namespace) -> dict:
    """The TrainConfig values the user's flags set (argparse SUPPRESSed the rest)."""
    return {k: v for k, v in vars(args).items() if k not in COMMAND_OPTIONS}


def parse_train_flags(argv: list[str]) -> dict:
    """The TrainConfig values that ``deepdive train ARGV`` gives (for scripts and benchmarks)."""
    parser = Parser(prog="deepdive train")
    add_train_flags(parser)
    return config_flags(parser.parse_args(argv))
