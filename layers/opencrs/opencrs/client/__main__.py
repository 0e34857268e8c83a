"""``python -m opencrs.client``: the ``opencrs`` command without an installed script."""

import sys

from opencrs.client.commands import main

sys.exit(main())
