"""``python -m posecommon.app.bench``: the same as ``posezoo bench``."""

import sys

from .suite import main

sys.exit(main())
