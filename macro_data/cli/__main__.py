"""``python -m macro_data.cli``: the same as the ``macro-data`` command."""

import sys

from macro_data.cli import main

sys.exit(main())
