"""``python -m napari_lung_unet.cli ...``: the same as the ``lung-unet`` console script."""

import sys

from . import main

sys.exit(main())
