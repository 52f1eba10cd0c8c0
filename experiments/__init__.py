"""This folder is also the package ``irconstyle.book.evidence.experiments`` (pyproject.toml's
package-dir), so that the experiment files the book checks its runs against are installed
with the package, in a clone and in a wheel alike.  Read them through
:mod:`irconstyle.book.evidence`; this file holds no code (only the ``*.yml`` files are shipped)."""
