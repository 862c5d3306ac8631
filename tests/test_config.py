"""The book's configuration as the theme reads it: the Colab launch (rocket) button's address."""

from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_colab_launch_button_points_at_the_chapter_in_the_repository():
    config = pytest.importorskip("jupyter_book.config")
    launch = pytest.importorskip("sphinx_book_theme.header_buttons.launch")
    book = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    sphinx_config, _ = config.get_final_config(
        user_yaml=ROOT / "_config.yml",
        cli_config={"latex_individualpages": False},
        sourcedir=ROOT,
    )
    theme_options = sphinx_config["html_theme_options"]
    owner, repo = urlsplit(book["repository"]["url"]).path.strip("/").split("/")
    page = "book/06_pinwheel"
    app = SimpleNamespace(
        env=SimpleNamespace(
            doc2path=lambda name: str(ROOT / f"{name}.ipynb"),
            metadata={page: {"kernelspec": {"name": "python3"}}},
        ),
        config={"html_theme_options": theme_options},
    )
    context = {
        "pagename": page,
        "header_buttons": [],
        "sourcename": f"{page}.ipynb",
        "github_url": "https://github.com",
        "github_user": owner,
        "github_repo": repo,
    }
    launch.add_launch_buttons(app, page, "page.html", context, None)
    urls = [
        b["url"]
        for group in context["header_buttons"]
        for b in group.get("buttons", [])
    ]
    expected = f"https://colab.research.google.com/github/{owner}/{repo}/blob/main/{page}.ipynb"
    assert urls == [expected]  # not .../blob/main/./book/... (path_to_book: ".")
