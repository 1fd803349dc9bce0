"""Copy the front-end libraries from node_modules into app/static/vendor (run `npm ci` first).

The libraries ship ready-made files, so there is no build step: this script only copies them, and the pinned
versions in package-lock.json decide what is served. Standard library only, so it runs before any install.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (package, file or folder inside the package, name under app/static/vendor)
FILES: tuple[tuple[str, str, str], ...] = (
    ("htmx.org", "dist/htmx.min.js", "htmx.min.js"),
    ("leaflet", "dist/leaflet.js", "leaflet.js"),
    ("leaflet", "dist/leaflet.css", "leaflet.css"),
    # leaflet.css refers to images/… relative to itself, so the folder sits beside it.
    ("leaflet", "dist/images", "images"),
    ("echarts", "dist/echarts.min.js", "echarts.min.js"),
    # The API documentation page at /docs, served from here rather than from a CDN.
    ("swagger-ui-dist", "swagger-ui-bundle.js", "swagger-ui-bundle.js"),
    ("swagger-ui-dist", "swagger-ui.css", "swagger-ui.css"),
)


class VendorError(Exception):
    """Something needed to vendor the libraries is missing."""


def vendor(root: Path = ROOT) -> list[Path]:
    """Copy every listed file into app/static/vendor and return the paths written."""
    modules = root / "node_modules"
    if not modules.is_dir():
        raise VendorError(f"{modules} is missing: run `npm ci` in {root} first (it installs package-lock.json)")
    target = root / "app" / "static" / "vendor"
    target.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for package, inner, name in FILES:
        source = modules / package / inner
        if not source.exists():
            raise VendorError(f"{source} is missing: node_modules is incomplete or stale, run `npm ci` again")
        dest = target / name
        if source.is_dir():
            shutil.copytree(source, dest, dirs_exist_ok=True)
        else:
            shutil.copy2(source, dest)
        written.append(dest)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: vendor the libraries, report what was written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this script's parent)")
    parser.add_argument("--quiet", action="store_true", help="print nothing on success")
    args = parser.parse_args(argv)
    try:
        written = vendor(args.root.resolve())
    except VendorError as exc:
        sys.stderr.write(f"vendor.py: {exc}\n")
        return 1
    if not args.quiet:
        for path in written:
            sys.stdout.write(f"vendored {path.relative_to(args.root.resolve())}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
