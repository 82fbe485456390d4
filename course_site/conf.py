"""Sphinx configuration of the course site; `make site` (course_site/build_site.py) runs it on a staged copy."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_site import mathjax  # noqa: E402

project = "Denoising diffusion from first principles"
author = "the course authors"
copyright = "the course authors"

extensions = ["myst_nb", "course_site_ext"]
root_doc = "index"
exclude_patterns = ["_build"]
suppress_warnings = ["myst.header"]  # headings may skip a level (# title, then ### question); that is fine

# Notebooks are shown exactly as committed: never executed here.
nb_execution_mode = "off"
nb_custom_formats = {".ipynb": ["course_site_ext.read_notebook", {}, False]}
nb_ipywidgets_js = {}  # widgets are static on the site: no widget manager (it would come from a CDN)
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# MathJax is served from the site itself: _static/mathjax/ (fetched once from the npm registry).
mathjax_path = "mathjax/tex-chtml.js"
html_static_path = ["static", str(mathjax())]
html_css_files = ["course.css"]
html_favicon = "static/favicon.svg"
html_context = {"default_mode": "light"}  # figures are drawn on white; the reader can still switch

html_theme = "sphinx_book_theme"
html_title = "Denoising diffusion from first principles"
html_theme_options = {
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "use_download_button": True,  # the .ipynb / .md source of each page, from the site itself
    "use_fullscreen_button": False,
    "navigation_with_keys": False,
}
html_show_sourcelink = False
html_copy_source = True
