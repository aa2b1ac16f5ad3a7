"""Container images for what the charts run, built locally from Debian, PyPI, npm and Go modules (opt-in)."""

from pathlib import Path

from devstack.images import build, recipes
from devstack.procs import DevstackError


def archive(name: str) -> Path:
    """The docker-archive of the image `name` (see recipes.RECIPES), built if its recipe changed.

    For `ctr -n k8s.io images import <archive>`: the archive names the image with the chart's exact
    reference. Raises DevstackError for an unknown name or a failed build.
    """
    if name not in recipes.RECIPES:
        raise DevstackError(f"no image recipe named {name!r}; there are: {', '.join(recipes.RECIPES)}")
    return build.build(recipes.RECIPES[name]).archive
