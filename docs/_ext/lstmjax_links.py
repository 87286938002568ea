"""Links between the tutorials, their solutions and the hand-written pages: in the repository, on
the site, and in a translated notebook.

The tutorials link to each other, to their solutions and to ``docs/glossary.md`` by paths relative
to ``tutorials/``, which work in Jupyter and on a code host. On the site those pages live elsewhere
(``docs/tutorials/*.ipynb``, ``docs/glossary.md``): :func:`rewrite_links` points a page's links at
the site's pages. A translated notebook lives in a folder of its own (``tutorials/zh_CN/``):
:func:`relocate_links` moves a page's links to wherever a copy of it is written.
"""

from __future__ import annotations

import os
import pathlib
import re
from collections.abc import Callable

DOCS = pathlib.Path(__file__).resolve().parents[1]
REPO = DOCS.parent
TUTORIALS = REPO / "tutorials"
STAGE = DOCS / "tutorials"  # generated: the notebooks the site renders

_LINK = re.compile(r"(\]\()([^)\s]+)(\))")


def _site_path(repo_path: pathlib.Path) -> pathlib.Path | None:
    """Where a repository file is a page of the site (its source in ``docs/``), or None."""
    try:
        rel = repo_path.relative_to(REPO)
    except ValueError:
        return None
    if rel.parts[:1] == ("tutorials",) and rel.suffix == ".md":
        return STAGE / rel.relative_to("tutorials").with_suffix(".ipynb")
    if rel.parts[:1] == ("docs",) and rel.suffix == ".md":
        return REPO / rel
    return None


def relocate_links(
    markdown: str,
    where: pathlib.Path,
    to: pathlib.Path,
    target_of: Callable[[pathlib.Path], pathlib.Path | None] = lambda path: path,
) -> str:
    """Rewrite the relative links to ``.md`` and ``.ipynb`` files of a page at ``where`` for a copy at ``to``.

    ``target_of`` maps each linked file (an absolute path) to the file the copy links to instead
    (``None``: leave that link alone). Anchors (``#...``) are kept; links to web addresses, absolute
    paths, anchors of the page itself and other files are left alone.

    Example:
      >>> relocate_links("[s](solutions/01.md) [g](../glossary.md#x) [w](https://a.org/b.md)",
      ...                STAGE / "01.ipynb", REPO / "out" / "01.ipynb")
      '[s](../docs/tutorials/solutions/01.md) [g](../docs/glossary.md#x) [w](https://a.org/b.md)'
    """

    def replace(match: re.Match) -> str:
        path, _, fragment = match.group(2).partition("#")
        if "://" in path or not path.endswith((".md", ".ipynb")) or path.startswith("/"):
            return match.group(0)
        page = target_of((where.parent / path).resolve())
        if page is None:
            return match.group(0)
        new = os.path.relpath(page, to.parent).replace(os.sep, "/") + (f"#{fragment}" if fragment else "")
        return f"{match.group(1)}{new}{match.group(3)}"

    return _LINK.sub(replace, markdown)


def rewrite_links(markdown: str, source: pathlib.Path, staged: pathlib.Path) -> str:
    """Point a tutorial's relative links to other ``.md`` files at those pages of the site.

    ``source`` is where the text is in the repository, ``staged`` where the site reads it. Links
    to files that are not pages are left alone (Sphinx then warns, and the build fails).
    """
    return relocate_links(markdown, source, staged, lambda path: _site_path(path) if path.suffix == ".md" else None)
