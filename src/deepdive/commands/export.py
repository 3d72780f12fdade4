"""``deepdive export``: a run's model as ONNX, TorchScript or an exported program, checked against PyTorch."""
from __future__ import annotations

import sys

from deepdive.inference.export import FORMATS, ONNX_INSTALL
from deepdive.output import strict_json

HELP = "a run's model as ONNX, TorchScript or an exported program, checked against PyTorch"


def add_arguments(p) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--format", required=True, choices=list(FORMATS),
                   help=f"onnx ({ONNX_INSTALL}), torchscript or exported-program (torch.export)")
    p.add_argument("--out", metavar="FILE", help="default RUN/model.onnx, RUN/model.ts or RUN/model.pt2; "
                   "FILE.json describes its input and output")
    p.add_argument("--json", action="store_true", help="the result as one JSON object on stdout")


def run(args) -> int:
    from deepdive.inference.export import difference_line, export_run
    from deepdive.training.threads import set_threads

    set_threads(None)
    result = export_run(args.run_dir, args.format, args.out)
    line = difference_line(result["max_abs_difference"], result["tolerance"])
    if args.json:
        print(line, file=sys.stderr)
        print(strict_json(result))
        return 0
    print(f"wrote {result['file']} ({args.format}: uint8 NCHW pixels in, logits out; see {result['side_file']})")
    print(line)
    return 0

