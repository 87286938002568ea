"""Sphinx configuration for the lstmjax site.

Build it with ``python docs/build.py`` (see that file, and docs/installation.md): once per
language, English (the source) and Chinese (``-D language=zh_CN``, translated from the catalogs
in ``docs/locales``; see ``docs/_ext/lstmjax_i18n.py`` and ``python docs/i18n.py --help``). The
site builds offline: no notebook is executed here (the tutorials arrive executed, see
``docs/_ext/lstmjax_docs.py``), MathJax is served from the site itself, and there is no
intersphinx.
"""

import os
import pathlib
import sys

DOCS = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
os.environ.setdefault("KERAS_BACKEND", "jax")  # autodoc imports lstmjax.nn.interop

import lstmjax  # noqa: E402
import lstmjax_translate  # noqa: E402

project = "lstmjax"
author = "the lstmjax authors"
copyright = "the lstmjax authors, Apache-2.0"
release = version = lstmjax.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "lstmjax_docs",
    "lstmjax_i18n",
]

# Languages: English is the source; docs/build.py builds each language with -D language=...
# Each page has its own catalog, docs/locales/<language>/LC_MESSAGES/<docname>.po (sphinx-intl),
# with no source locations in it (they would change with every edit of the English).
language = "en"
locale_dirs = ["locales/"]
gettext_compact = False
gettext_location = False
gettext_uuid = False
gettext_allow_fuzzy_translations = False  # an outdated translation shows the English instead

# Sources: hand-written pages (index, installation, glossary, instructor guide), the generated
# tutorials/ (executed notebooks) and api/ pages.
exclude_patterns = ["_build", "_ext", "_templates", "locales", "**.ipynb_checkpoints", "README.md"]
templates_path = ["_templates"]

# MyST and MyST-NB: render the notebooks' stored outputs, never execute.
myst_enable_extensions = list(lstmjax_translate.MYST_EXTENSIONS)  # the translated notebooks read cells alike
myst_heading_anchors = 3
nb_execution_mode = "off"
nb_merge_streams = True
nb_ipywidgets_js = {}  # no widget JavaScript from a CDN
nb_render_markdown_format = "myst"

# autodoc + napoleon: Google-style docstrings (Args / Returns / Raises / Example).
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_default_options = {"exclude-members": "__init__, __new__"}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_attr_annotations = True
napoleon_use_ivar = True  # "Attributes:" as fields of the class entry (autodoc documents the attributes)

# Math without a CDN: MathJax 3 copied into _static/mathjax by lstmjax_docs.vendor_mathjax.
mathjax_path = "mathjax/tex-chtml.js"

html_theme = "sphinx_book_theme"
html_title = "lstmjax"
html_favicon = "_static/favicon.svg"  # also spares the browser a request for /favicon.ico
html_static_path = ["_static", "_build/vendor"]
html_css_files = ["lstmjax.css"]
html_context = {"default_mode": "light"}  # figures have white backgrounds; unset, the theme logs a console error
html_last_updated_fmt = None
html_theme_options = {
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "use_download_button": False,  # each tutorial has its own download links (clean .ipynb, .md)
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "navigation_with_keys": False,
    "article_header_end": ["lstmjax-language.html", "article-header-buttons.html"],  # the language switch
}
