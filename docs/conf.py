"""Sphinx configuration of the audiokit docs site; `docs/build.py` stages the pages and calls Sphinx with `-c docs`.
Titles and links come from settings.ini (passed in by build.py through the environment)."""
import os

project = os.environ.get('AUDIOKIT_DOCS_TITLE', 'audiokit')
release = version = os.environ.get('AUDIOKIT_DOCS_VERSION', '')
copyright = os.environ.get('AUDIOKIT_DOCS_AUTHOR', '')
root_doc = 'index'

extensions = ['myst_nb', 'sphinx.ext.githubpages']
exclude_patterns = ['_build', '**.ipynb_checkpoints']

# The notebooks were executed (or not) by build.py; Sphinx only renders them.
nb_execution_mode = 'off'
nb_render_markdown_format = 'myst'
nb_merge_streams = True
myst_enable_extensions = ['colon_fence', 'dollarmath', 'html_image', 'attrs_inline']
myst_heading_anchors = 3
suppress_warnings = ['myst.header', 'mystnb.unknown_mime_type', 'misc.highlighting_failure', 'myst.xref_missing']

html_theme = 'sphinx_book_theme'
html_title = project
html_theme_options = {
    'repository_url': os.environ.get('AUDIOKIT_DOCS_REPO', ''),
    'use_repository_button': bool(os.environ.get('AUDIOKIT_DOCS_REPO')),
    'show_toc_level': 2,
    'home_page_in_toc': True,
}
html_static_path = ['static'] if os.path.isdir(os.path.join(os.path.dirname(__file__), 'static')) else []
html_css_files = ['audiokit.css'] if html_static_path else []
