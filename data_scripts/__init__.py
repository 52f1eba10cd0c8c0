"""Command-line data preparation; run as ``python -m data_scripts.<name>``. Thin wrappers:
the logic lives in :mod:`irconstyle.data` so it can be imported and tested."""
