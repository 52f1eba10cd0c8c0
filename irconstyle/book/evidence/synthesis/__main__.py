"""``python -m irconstyle.book.evidence.synthesis --write | --check | --print CHAPTER``."""
import sys

from ._writer import main

sys.exit(main())
