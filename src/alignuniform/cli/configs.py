"""``alignuniform configs [show NAME | path NAME]``: the shipped recipes (configs, sweeps)."""

from __future__ import annotations

import argparse

from alignuniform.cli._options import add_common_options


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "configs",
        help="list the shipped training configs and sweep specs, or print one",
        description=(
            "The recipes that ship with the package: training configs (for 'alignuniform "
            "train --config NAME') and sweep specs. Without an action, lists them with their "
            "one-line descriptions; 'show NAME' prints one; 'path NAME' prints where it lies. "
            "With --out DIR the recipe (or, for list, every recipe) is copied into DIR to edit."
        ),
    )
    p.add_argument("action", nargs="?", choices=("list", "show", "path"), default="list",
                   help="list (default), show NAME or path NAME")
    p.add_argument("name", nargs="?", metavar="NAME",
                   help="recipe name, e.g. stl10_align_uniform (or configs/NAME, sweeps/NAME)")
    add_common_options(
        p, out_help="copy the recipe(s) into this folder as NAME.yaml (sweeps under sweeps/)",
        seed_help="unused: recipes are not random (taken like every command's --seed)",
        seed_default=None)
    p.set_defaults(func=run)


def _copy(recipe, out) -> None:
    from alignuniform.io import atomic_write_text, check_writable_dir

    check_writable_dir(out)
    dest = out / recipe.name if recipe.kind == "configs" else out / "sweeps" / recipe.name
    dest = dest.with_suffix(".yaml")
    if dest.exists():
        raise ValueError(f"{dest} exists; not overwritten")
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(dest, recipe.path.read_text(encoding="utf-8"))
    print(f"wrote {dest}")


def run(args: argparse.Namespace) -> int:
    from alignuniform.shipped import KINDS, find_recipe, list_recipes

    if args.action == "list":
        if args.name is not None:
            raise ValueError("'configs list' takes no NAME (did you mean 'configs show NAME'?)")
        recipes = list_recipes()
        if args.out is not None:
            for r in recipes:
                _copy(r, args.out)
            return 0
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
    recipe = find_recipe(args.name)
    if args.out is not None:
        _copy(recipe, args.out)
    elif args.action == "path":
        print(recipe.path)
    else:
        print(recipe.path.read_text(encoding="utf-8"), end="")
    return 0
