"""``python -m naftiko`` is the ``naftiko`` command."""

import sys

from naftiko.cli.entry import main

if __name__ == "__main__":
    sys.exit(main())
