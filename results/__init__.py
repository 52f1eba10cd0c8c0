"""This folder is also the package ``irconstyle.book.evidence.results`` (pyproject.toml's
package-dir): an editable install reads these files in place and a wheel carries a copy,
so the book finds the same evidence in a clone and outside it.  Read it through
:mod:`irconstyle.book.evidence`; this file holds no code.  ``pending/`` is not shipped."""
