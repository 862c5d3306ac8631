"""The book's own Sphinx extension (``_config.yml``: ``sphinx.local_extensions``).

1. Offline math: before Sphinx checks ``html_static_path``, make sure the MathJax 2.7 copy that
   ``mathjax_path`` points at exists (``tools/offline_assets.py mathjax``; fetched from Debian's
   ``libjs-mathjax`` or npm, never committed). So a bare ``jupyter-book build .`` works too.
2. Sphinx 7.4 writes every inline ``<script>`` that an extension adds after the builder starts
   twice (``prepare_writing`` re-adds them with filename ``''`` where they were ``None``): the
   second ``const THEBE_JS_URL = ...`` of sphinx-thebe throws "Identifier 'THEBE_JS_URL' has
   already been declared" on every page. Drop the repeats when each page is written.
3. Widget fonts: the widget manager (``embed-amd.js``, from a CDN) finds its fonts relative to
   the address require.js gives its AMD modules, which is the page's folder unless told
   otherwise, so every page with widgets asks the book's own server for
   ``@jupyter-widgets/html-manager/dist/*.woff2`` and gets 404s. Before the manager loads, point
   require.js at the manager's ``dist/`` folder on the same CDN.
4. The API page keeps up with the package: a warning (an error under ``-W``) names every public
   module of ``vmonf_mini`` that ``book/api.md`` does not document.
5. The bibliography's labels match the chapters' (author, year) citations: the pybtex style
   ``authoryear`` (``bibtex_default_style``) is ``plain`` (sorted by author) with labels like
   ``[Pires & Figueiredo 2020]`` or ``[Dinh et al. 2017]`` instead of ``[1]``, ``[2]``...
6. Alt text on every figure: a chapter's figure is a PNG output of a cell, which myst-nb shows
   with its file name as ``alt``. ``vmonf_mini.plot`` (imported by every chapter) writes each
   figure's title and axis names into the PNG (``figure_alt_text``, a ``Description`` text
   chunk); here each such image gets that text as its ``alt``, and an image without one gets
   "A figure of <page title>" rather than a file name.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
from pathlib import Path
from typing import Any, Dict

from sphinx.util import logging

logger = logging.getLogger(__name__)
STATIC_DIR = "_build/offline_static"
PACKAGE = "vmonf_mini"


def _ensure_offline_mathjax(app, config) -> None:
    if STATIC_DIR not in [str(p).rstrip("/") for p in config.html_static_path]:
        return
    spec = importlib.util.spec_from_file_location(
        "offline_assets", Path(__file__).with_name("offline_assets.py")
    )
    assets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(assets)
    assets.mathjax(Path(app.confdir) / STATIC_DIR / "mathjax")


def _key(script: Any) -> tuple:
    filename = getattr(script, "filename", script) or ""
    attributes = getattr(script, "attributes", {}) or {}
    return (
        str(filename),
        getattr(script, "priority", None),
        tuple(sorted(attributes.items())),
    )


def _drop_repeated_scripts(
    app, pagename: str, templatename: str, context: Dict[str, Any], doctree
) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept
    _point_widget_manager_at_its_folder(kept)


_EMBED_AMD = re.compile(
    r"(?P<dist>.+/@jupyter-widgets/html-manager@[^/]+/dist)/embed-amd\.js$"
)


def _point_widget_manager_at_its_folder(scripts: list) -> None:
    for index, script in enumerate(scripts):
        match = _EMBED_AMD.match(str(getattr(script, "filename", "") or ""))
        if match is None:
            continue
        paths = json.dumps({"@jupyter-widgets/html-manager/dist": match.group("dist")})
        body = f"if (window.requirejs) {{ requirejs.config({{paths: {paths}}}); }}"
        priority = getattr(script, "priority", 500)
        scripts.insert(index, type(script)(None, priority=priority, body=body))
        return


def _check_api_covers_package(app, env) -> None:
    import pkgutil

    try:
        package = importlib.import_module(PACKAGE)
    except ImportError:
        return
    domain = env.get_domain("py")
    documented = set(domain.modules)
    objects = [name for name in domain.objects]
    for info in pkgutil.iter_modules(package.__path__):
        module = f"{PACKAGE}.{info.name}"
        if info.name.startswith("_") or module in documented:
            continue
        if any(
            name.startswith(module + ".") for name in objects
        ):  # e.g. VMoNF, canonically mixture.VMoNF
            continue
        logger.warning(
            f"{module} is not documented: add a section for it to book/api.md",
            type="vmonf",
            subtype="api",
        )


def _register_bibliography_style() -> None:
    from pybtex.plugin import register_plugin
    from pybtex.richtext import Text
    from pybtex.style.formatting.plain import Style as PlainStyle
    from pybtex.style.labels import BaseLabelStyle

    def surname(person) -> str:
        return Text.from_latex(
            " ".join(person.prelast_names + person.last_names)
        ).render_as("text")

    class AuthorYearLabels(BaseLabelStyle):
        def format_labels(self, sorted_entries):
            seen: Dict[str, int] = {}
            for entry in sorted_entries:
                people = (
                    entry.persons.get("author") or entry.persons.get("editor") or []
                )
                names = [surname(p) for p in people]
                if len(names) > 2:
                    who = f"{names[0]} et al."
                else:
                    who = " & ".join(names) or entry.fields.get("key", entry.key)
                label = f"{who} {entry.fields.get('year', '')}".strip()
                seen[label] = seen.get(label, 0) + 1
                yield (
                    label
                    if seen[label] == 1
                    else f"{label}{chr(ord('a') + seen[label] - 1)}"
                )

    class AuthorYearStyle(PlainStyle):
        default_label_style = "vmonf-authoryear"

    register_plugin("pybtex.style.labels", "vmonf-authoryear", AuthorYearLabels)
    register_plugin("pybtex.style.formatting", "authoryear", AuthorYearStyle)


def _png_description(path: Path) -> str:
    """The ``Description`` text chunk (tEXt or uncompressed iTXt) of a PNG file, or ''."""
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return ""
    at = 8
    while at + 8 <= len(data):
        size = int.from_bytes(data[at : at + 4], "big")
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + size]
        at += 12 + size
        if kind == b"tEXt" and body.startswith(b"Description\x00"):
            return body.split(b"\x00", 1)[1].decode("latin-1")
        if kind == b"iTXt" and body.startswith(b"Description\x00\x00"):
            # keyword, 0, compression flag 0, method, language tag, 0, translated keyword, 0
            rest = body[len(b"Description\x00\x00") + 1 :]
            return rest.split(b"\x00", 2)[2].decode("utf-8")
        if (
            kind == b"IDAT"
        ):  # text chunks before the image data are the ones matplotlib writes
            break
    return ""


def _set_figure_alt_text(app, doctree, docname: str) -> None:
    from docutils import nodes

    title = app.env.titles.get(docname)
    page = title.astext() if title is not None else docname
    for image in doctree.findall(nodes.image):
        uri = image.get("uri", "")
        alt = image.get("alt", "")
        if alt and not alt.endswith(Path(uri).name):
            continue  # an author's alt text
        path = Path(app.srcdir) / uri
        if not path.is_file():
            path = Path(app.env.relfn2path(uri, docname)[1])
        image["alt"] = _png_description(path) or f"A figure of {page}"


def setup(app) -> Dict[str, Any]:
    _register_bibliography_style()
    app.connect(
        "config-inited", _ensure_offline_mathjax, priority=100
    )  # before Sphinx's 800
    app.connect("html-page-context", _drop_repeated_scripts, priority=900)
    app.connect("env-check-consistency", _check_api_covers_package)
    app.connect("doctree-resolved", _set_figure_alt_text)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
