#!/usr/bin/env python3
"""Fetch the JavaScript the book needs offline, from package registries, at build/test time.

Nothing fetched here is committed (everything lands under ``_build/``, which is git-ignored).

``mathjax``
    MathJax 2.7 for the book's math, copied into ``_build/offline_static/mathjax/``, the extra
    static path that ``_config.yml`` names (Sphinx copies it to ``_build/html/_static/mathjax``
    and ``mathjax_path`` points there, so the built book renders math with no internet, and
    online too since the copy is served with the pages). Sources, in order: Debian's
    ``libjs-mathjax`` when installed (``tools/install_browser.sh`` installs it), the same
    package fetched with ``apt-get download`` and unpacked without installing, and finally the
    npm package ``mathjax@2.7.9`` (the same release).

    Why this plumbing and not the ``sphinx-mathjax-offline`` extension: its 0.0.2 (the latest
    release, files of 2021-2022) ships MathJax 3.2.2 (``tex-chtml.js``, no ``MathJax.js``)
    and sets ``mathjax_path`` to it, so the book's MathJax 2 settings (``mathjax2_config``,
    ``book/_static/vmonf.css``) would no longer apply. The book's widget pages need MathJax 2:
    myst-nb loads ``@jupyter-widgets/html-manager@1.0.6`` (its default ``ipywidgets_js``), whose
    ``embed-amd.js`` typesets every widget's description with ``MathJax.Hub.Queue`` whenever a
    ``MathJax`` is on the page, and ``MathJax.Hub`` is MathJax 2's API (MathJax 3 has none).

``npm SPEC [SPEC ...]``
    ``npm pack`` packages (e.g. ``@jupyter-widgets/html-manager@1.0.6 requirejs@2.3.4``) and
    unpack them into ``_build/offline_cache/npm/<name>@<version>/``. The browser test uses this
    to serve the widget manager and require.js that the HTML loads from CDNs.

Usage::

    python tools/offline_assets.py mathjax
    python tools/offline_assets.py npm @jupyter-widgets/html-manager@1.0.6 requirejs@2.3.4
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Iterable, List, Optional

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "_build" / "offline_static"  # named by html_static_path in _config.yml
CACHE = Path(os.environ.get("VMONF_ASSET_CACHE", ROOT / "_build" / "offline_cache"))
MATHJAX_VERSION = "2.7.9"
DEBIAN_MATHJAX = Path("/usr/share/javascript/mathjax")

# What the CommonHTML renderer and the right-click menu need; the rest of MathJax (unpacked
# sources, the 'full' configs, image and SVG fonts, the other renderers) is left out.
_MATHJAX_SKIP = (
    "unpacked",
    "test",
    "docs",
    "fonts/HTML-CSS/STIX-Web",
    "fonts/HTML-CSS/TeX/otf",
    "fonts/HTML-CSS/TeX/svg",
    "fonts/HTML-CSS/TeX/png",
    "fonts/HTML-CSS/TeX/eot",
    "jax/output/SVG",
    "jax/output/HTML-CSS",
    "jax/output/NativeMML",
)


def log(message: str) -> None:
    print(f"offline_assets: {message}", file=sys.stderr)


def _skipped(rel: str) -> bool:
    if rel.startswith("config/") and rel.endswith("-full.js"):
        return True
    return any(rel == s or rel.startswith(s + "/") for s in _MATHJAX_SKIP)


def _copy_mathjax(src: Path, dest: Path) -> Path:
    if (
        not (src / "MathJax.js").is_file()
        or not (src / "config" / "TeX-AMS_CHTML.js").is_file()
    ):
        raise FileNotFoundError(
            f"{src} does not hold MathJax 2 (MathJax.js, config/TeX-AMS_CHTML.js)"
        )
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    count = 0
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src).as_posix()
        if _skipped(rel) or path.is_dir():
            continue
        target = tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)  # follows symlinks
        count += 1
    (tmp / "SOURCE.txt").write_text(
        f"MathJax copied from {src} (not committed; made by tools/offline_assets.py)\n"
    )
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    log(f"MathJax: {count} files from {src} -> {dest}")
    return dest


def _mathjax_from_apt(workdir: Path) -> Optional[Path]:
    """Download (not install) Debian's libjs-mathjax and fonts-mathjax and unpack them."""
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        return None
    try:
        subprocess.run(
            ["apt-get", "download", "libjs-mathjax", "fonts-mathjax"],
            cwd=workdir,
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
    except (subprocess.SubprocessError, OSError) as err:
        log(f"apt-get download libjs-mathjax failed ({err}); trying npm")
        return None
    root = workdir / "root"
    for deb in workdir.glob("*.deb"):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    tree = root / "usr/share/javascript/mathjax"
    # Debian may ship the fonts in fonts-mathjax, linked from the MathJax tree by absolute paths:
    for link in [p for p in tree.rglob("*") if p.is_symlink()]:
        target = os.readlink(link)
        if os.path.isabs(target) and (root / target.lstrip("/")).exists():
            link.unlink()
            link.symlink_to(root / target.lstrip("/"))
    return tree


def _mathjax_from_npm(workdir: Path) -> Optional[Path]:
    try:
        return npm_package(f"mathjax@{MATHJAX_VERSION}", cache=workdir)
    except (subprocess.SubprocessError, OSError) as err:
        log(f"npm pack mathjax@{MATHJAX_VERSION} failed: {err}")
        return None


def mathjax(dest: Path = STATIC / "mathjax") -> Path:
    """Put MathJax 2.7 at ``dest`` (default: the book's extra static path); return ``dest``."""
    stamp = dest / "SOURCE.txt"
    if (dest / "MathJax.js").is_file() and stamp.is_file():
        log(f"MathJax already at {dest}")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    if (DEBIAN_MATHJAX / "MathJax.js").is_file():
        return _copy_mathjax(DEBIAN_MATHJAX, dest)
    with tempfile.TemporaryDirectory(prefix="mathjax-") as tmp:
        for fetch in (_mathjax_from_apt, _mathjax_from_npm):
            tree = fetch(Path(tmp))
            if tree is not None and (tree / "MathJax.js").is_file():
                return _copy_mathjax(tree, dest)
    raise SystemExit(
        "offline_assets: could not get MathJax 2.7. Install Debian's libjs-mathjax "
        "(sudo tools/install_browser.sh) or make npm able to reach its registry."
    )


def _split_spec(spec: str) -> tuple:
    at = spec.rfind("@")
    if at <= 0:
        raise ValueError(f"pin a version: {spec!r} should look like name@1.2.3")
    return spec[:at], spec[at + 1 :]


def npm_package(spec: str, cache: Path = CACHE / "npm") -> Path:
    """``npm pack`` one pinned package and unpack it; return the package directory."""
    name, version = _split_spec(spec)
    dest = cache / f"{name.replace('/', '__')}@{version}"
    if (dest / "package.json").is_file():
        return dest
    if not shutil.which("npm"):
        raise FileNotFoundError(
            "npm is not installed (tools/install_browser.sh installs it)"
        )
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="npm-pack-") as tmp:
        out = subprocess.run(
            ["npm", "pack", "--silent", spec],
            cwd=tmp,
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
        tarballs = list(Path(tmp).glob("*.tgz"))
        if len(tarballs) != 1:
            raise RuntimeError(
                f"npm pack {spec} gave {tarballs} ({out.stdout} {out.stderr})"
            )
        partial = Path(tmp) / "unpacked"
        with tarfile.open(tarballs[0]) as tar:
            members = [m for m in tar.getmembers() if m.isfile() or m.isdir()]
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(partial, members=members, **kwargs)
        shutil.rmtree(dest, ignore_errors=True)
        shutil.move(str(partial / "package"), str(dest))
    log(f"npm: {spec} -> {dest}")
    return dest


def npm_packages(specs: Iterable[str], cache: Path = CACHE / "npm") -> List[Path]:
    return [npm_package(s, cache) for s in specs]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    mj = sub.add_parser("mathjax", help="MathJax 2.7 into the book's extra static path")
    mj.add_argument("--dest", type=Path, default=STATIC / "mathjax")
    npm = sub.add_parser("npm", help="npm pack and unpack pinned packages")
    npm.add_argument("specs", nargs="+")
    npm.add_argument("--cache", type=Path, default=CACHE / "npm")
    args = parser.parse_args(argv)
    if args.what == "mathjax":
        print(mathjax(args.dest))
    else:
        for path in npm_packages(args.specs, args.cache):
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
