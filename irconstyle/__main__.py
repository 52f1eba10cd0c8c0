"""``python -m irconstyle``: the same command line as the ``irconstyle`` script."""
import sys

from .cli import main

sys.exit(main())
