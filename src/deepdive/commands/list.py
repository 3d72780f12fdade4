"""``deepdive list``: the models, datasets, optimizers and recipes deepdive knows."""
from __future__ import annotations

import json

from deepdive.errors import UserError

HELP = "models, datasets and optimizers"


def add_arguments(p) -> None:
    p.add_argument("--json", action="store_true")
    p.add_argument("--external", action="store_true", help="also every torchvision (and timm) model name")


def run(args) -> int:
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

