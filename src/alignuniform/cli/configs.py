"""``alignuniform configs [show NAME | path NAME]``: the shipped recipes (configs, sweeps)."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "configs",
        help="list the shipped training configs and sweep specs, or print one",
        description=(
            "The recipes that ship with the package: training configs (for 'alignuniform "
            "train --config NAME') and sweep specs. Without an action, lists them with their "
            "one-line descriptions; 'show NAME' prints one (redirect it to a file to copy and "
            "edit it); 'path NAME' prints where it lies."
        ),
    )
    p.add_argument("action", nargs="?", choices=("list", "show", "path"), default="list",
                   help="list (default), show NAME or path NAME")
    p.add_argument("name", nargs="?", metavar="NAME",
                   help="recipe name, e.g. stl10_align_uniform (or configs/NAME, sweeps/NAME)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from alignuniform.recipes import KINDS, find_recipe, list_recipes

    if args.action == "list":
        if args.name is not None:
            raise ValueError("'configs list' takes no NAME (did you mean 'configs show NAME'?)")
        recipes = list_recipes()
        for kind in KINDS:
            group = [r for r in recipes if r.kind == kind]
            if not group:
                continue
            print(f"{kind}:")
            width = max(len(r.name) for r in group)
            for r in group:
                print(f"  {r.name:{width}s}  {r.description}")
        if not recipes:
            print("no shipped recipes found")
        return 0
    if args.name is None:
        raise ValueError(f"'configs {args.action}' needs a NAME (see 'alignuniform configs')")
    path = find_recipe(args.name).path
    if args.action == "path":
        print(path)
    else:
        print(path.read_text(encoding="utf-8"), end="")
    return 0
