"""Command line for the local images: python -m devstack.images list|build [NAME ...] [--force]."""

import argparse
import sys

from devstack.images import build, recipes
from devstack.procs import DevstackError


def main(argv: list[str] | None = None) -> int:
    top = argparse.ArgumentParser(prog="python -m devstack.images", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the images there are recipes for, with the references the charts use")
    make = commands.add_parser("build", help="build the named images (all when none is named), cached by recipe")
    make.add_argument("names", nargs="*", metavar="NAME", help="one of: " + ", ".join(recipes.RECIPES))
    make.add_argument("--force", action="store_true", help="build again even if the recipe has not changed")
    args = top.parse_args(argv)
    if args.command == "list":
        for name, recipe in recipes.RECIPES.items():
            print(f"{name:25} {recipe.ref}")
        return 0
    unknown = sorted(set(args.names) - set(recipes.RECIPES))
    if unknown:
        top.error(f"no recipe for {', '.join(unknown)}; there are: {', '.join(recipes.RECIPES)}")
    failed = 0
    for name in args.names or list(recipes.RECIPES):
        try:
            image = build.build(recipes.RECIPES[name], force=args.force)
        except DevstackError as exc:
            print(f"devstack: {exc}", file=sys.stderr)
            failed += 1
            continue
        how = "cached, built earlier in" if image.cached else "built in"
        print(f"{image.ref}  {image.archive}  {image.size / 1e6:.1f} MB  ({how} {image.seconds:.0f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
