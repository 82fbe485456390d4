"""Sphinx extension for the course site: notebooks as saved, cell anchors, links between course files.

1. ``read_notebook`` (myst-nb's reader for ``.ipynb``) prepares each notebook for a static page, in memory
   only (the files are never changed, nothing is executed):
   - every markdown cell starts with ``<div id="CELL-ID">``, so ``NN_name.ipynb#CELL-ID`` lands on it;
   - widget outputs (sliders, progress bars) cannot move without a kernel: an interactive widget shows its saved
     pictures and a note saying so, a progress bar the text it was saved with (its final state);
   - links to stylesheets on other hosts (matplotlib's animation player asks for Font Awesome from a CDN)
     are removed: the theme serves Font Awesome itself, and the site loads nothing from the network.
2. ``doctree-read``: every code cell's container gets its cell id as HTML id, every section also JupyterLab's
   heading id; Markdown links to either resolve.
3. ``doctree-resolved``: inline code that names a course file, like ``notebooks/05_ddpm_training.ipynb#train``,
   ``walkthroughs/05_ddpm_training.md`` or ``05_ddpm_training``, becomes a link to its page (and cell).
"""
import html
import json
import re
from pathlib import Path, PurePosixPath

import nbformat
from docutils import nodes
from sphinx.util import logging

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
STATIC_WIDGET_NOTE = (
    '<p class="static-widget"><strong>Interactive widget</strong> ({what}): static on this site. '
    'Open the notebook in JupyterLab (<code>make lab</code>) and run it to move the controls.</p>')
REMOTE_LINK_TAG = re.compile(r"<link\b[^>]*\bhref\s*=\s*[\"']?(?:https?:)?//[^>]*>", re.IGNORECASE)
# A reference to a course file inside `inline code`: optional ../ or ./, a folder, a file, an optional #cell-id.
FILE_REF = re.compile(r"^(?:\.\.?/)*(?P<path>(?:[A-Za-z_]+/)?[0-9]{2}_[A-Za-z0-9_]+(?:\.ipynb|\.md)|"
                      r"benchmarks/[A-Z]+\.md)(?:#(?P<anchor>[A-Za-z0-9_-]+))?$")
NOTEBOOK_STEM = re.compile(r"^[0-9]{2}_[A-Za-z0-9_]+$")
LOGGER = logging.getLogger(__name__)


def read_notebook(text):
    """myst-nb reader: the notebook as the site shows it (see the module docstring)."""
    nb = nbformat.reads(text, as_version=4)
    nb.metadata.pop("widgets", None)  # no widget state: myst-nb would load the widget manager from a CDN
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.get("id"):
            cell.source = f'<div id="{html.escape(cell.id)}" class="cell-anchor"></div>\n\n{cell.source}'
        if cell.cell_type != "code":
            continue
        outputs = []
        for output in cell.outputs:
            data = output.get("data", {})
            if WIDGET_VIEW in data:
                outputs += _static_widget(output)
                continue
            if "text/html" in data:
                data["text/html"] = REMOTE_LINK_TAG.sub("", data["text/html"])
            outputs.append(output)
        cell.outputs = outputs
    return nb


def _static_widget(output):
    """What the page shows for a widget output: a progress bar as the text it was saved with (its final state);
    an interactive control as a note that it is static here, after its saved pictures (``cu.interact_with_preview``)."""
    plain = "".join(output["data"].get("text/plain", ""))
    picture = output["data"].get("image/png")
    if picture is None and not plain.startswith("interactive("):
        return [nbformat.v4.new_output("stream", name="stdout", text=plain + "\n")]
    controls = sorted(set(re.findall(r"\b([A-Z][A-Za-z]*(?:Slider|Dropdown|Checkbox|Button)\w*)\(", plain)))
    note = STATIC_WIDGET_NOTE.format(what=", ".join(controls) or "controls")
    pictures = [] if picture is None else [nbformat.v4.new_output("display_data", data={"image/png": picture},
                                                                      metadata=output.get("metadata", {}))]
    return pictures + [nbformat.v4.new_output("display_data", data={"text/html": note})]


def _notebook_cell_ids(path):
    return [cell.get("id") for cell in json.loads(Path(path).read_text())["cells"]]


def add_anchors(app, doctree):
    """Ids for every cell and, as JupyterLab writes them, every heading; links may use either.

    A code cell's container gets its cell id (a markdown cell's anchor comes from ``read_notebook``). A section
    also gets JupyterLab's heading id (its title with spaces as dashes, like ``Exercises`` or
    ``1.-One-step-of-noise``), so a link written for JupyterLab lands on the site too. Both kinds are given
    to MyST (``myst_slugs``) so that Markdown links like ``[...](../notebooks/NN_name.ipynb#cell-id)`` resolve.
    """
    docname = app.env.docname
    source = Path(app.env.doc2path(docname))
    slugs = app.env.metadata[docname].setdefault("myst_slugs", {})
    cell_ids = _notebook_cell_ids(source) if source.suffix == ".ipynb" else []
    owners = {i: node for node in doctree.findall(nodes.Element) for i in node.get("ids", ())}
    for cell_id in filter(None, cell_ids):  # a cell id wins over a heading's generated id ("1. Versions" -> versions)
        if cell_id in owners:
            owner = owners[cell_id]
            owner["ids"].remove(cell_id)
            if not owner["ids"]:
                owner["ids"].append(f"{cell_id}-heading")
    for container in doctree.findall(nodes.container):
        cell_id = container.get("nb_element") == "cell_code" and cell_ids[container["cell_index"]]
        if cell_id:
            container["ids"].insert(0, cell_id)
    for cell_id in filter(None, cell_ids):
        slugs[cell_id] = (None, cell_id, "")
    taken = {i for node in doctree.findall(nodes.Element) for i in node.get("ids", ())} | set(filter(None, cell_ids))
    for section in doctree.findall(nodes.section):
        title = section.next_node(nodes.title).astext()
        heading_id = title.replace(" ", "-")
        if heading_id not in taken:
            section["ids"].append(heading_id)
            taken.add(heading_id)
        if heading_id in section["ids"]:
            slugs.setdefault(heading_id, (None, heading_id, title))
    app.env.metadata[docname]["course_ids"] = sorted(taken)


def _target(app, docname, text):
    """(docname, anchor) of the course page that inline code ``text`` names, or None."""
    found = app.env.found_docs
    if NOTEBOOK_STEM.match(text):
        return (f"notebooks/{text}", None) if f"notebooks/{text}" in found else None
    match = FILE_REF.match(text)
    if not match:
        return None
    path = PurePosixPath(match["path"]).with_suffix("")
    here = PurePosixPath(docname).parent
    for candidate in (here / path, PurePosixPath("notebooks") / path, path):
        if str(candidate) in found:
            return str(candidate), match["anchor"]
    return None


def _inside(node, kinds):
    while node.parent is not None:
        node = node.parent
        if isinstance(node, kinds):
            return True
    return False


def link_file_references(app, doctree, docname):
    """Turn inline code naming a course file (and cell) into a link to its page (and cell)."""
    for literal in list(doctree.findall(nodes.literal)):
        if _inside(literal, (nodes.reference, nodes.literal_block)):
            continue  # already a link, or code
        target = _target(app, docname, literal.astext())
        if target is None:
            continue
        todoc, anchor = target
        if anchor and anchor not in app.env.metadata[todoc].get("course_ids", ()):
            LOGGER.warning(
                "%s names %s#%s, which is no cell or section there", docname, todoc, anchor, location=literal)
        uri = app.builder.get_relative_uri(docname, todoc) + (f"#{anchor}" if anchor else "")
        reference = nodes.reference("", "", internal=True, refuri=uri, classes=["course-ref"])
        literal.replace_self(reference)
        reference.append(literal)


def setup(app):
    app.connect("doctree-read", add_anchors, priority=400)  # before Sphinx records the table of contents
    app.connect("doctree-resolved", link_file_references)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
