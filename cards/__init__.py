"""Dataset card templates (Jinja Markdown), one per kind of repo hf-dr pushes: ``reinforced_dataset.md``.

The folder is a package only so that the templates ship as its package data (``pyproject.toml``), in a wheel as in an
editable install; :func:`hf_dr.hub.card.build_card` reads them with :mod:`importlib.resources`, never by a path into
the source tree. The templates import nothing: their code blocks are what a user of the pushed repo runs
(``tests/hub/test_card.py`` runs them).
"""
