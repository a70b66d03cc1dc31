"""The ``lung-unet`` command line (argument parsing only) and its entry point ``napari_lung_unet.cli:main``.

One module per subcommand (predict, models, export, train, finetune, evaluate), each with
``add_parser(subparsers)`` and ``run(args) -> int``; :mod:`.dispatch` builds the parser and turns
expected errors into one line. The work itself lives elsewhere: ``batch/`` runs ``predict``,
``training/`` trains. This is the one package that imports both ``napari_lung_unet`` and ``training``.
Nothing is imported here at load time, so ``torchrun -m napari_lung_unet.cli.train`` loads only
what training needs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """``lung-unet``: parse ``argv`` (default: ``sys.argv[1:]``) and run the subcommand."""
    try:
        from ..batch.forkserver import start_early

        # predict --workers N: the workers' forkserver imports torch on another core while this process does
        start_early(sys.argv[1:] if argv is None else argv)
        from .dispatch import main as dispatch_main  # deferred: keeps this package import-free

        return dispatch_main(argv)
    except KeyboardInterrupt:  # Ctrl-C while torch and the subcommands import (the first seconds): no traceback
        print("interrupted", file=sys.stderr)
        return 130
