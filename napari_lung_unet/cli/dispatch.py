"""The ``lung-unet`` command line: predict, models, train, finetune, evaluate, export.

Each subcommand lives in its own module of this package (``napari_lung_unet/cli/<name>.py``),
imported here by name, and registers itself through ``add_parser``; this file only dispatches and
turns expected errors into one clear line instead of a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from types import ModuleType

# Must be set before torch is imported (the subcommand modules below import it). OpenMP threads
# otherwise spin while idle; on a 2-core laptop where anything else holds a core, 2-thread inference
# then ran 10-30x slower than 1 thread (bench/proposal_latency.py --omp-passive). setdefault keeps a
# user's own choice.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Static imports: a subcommand whose module is missing or broken is an ImportError here, never a
# silently shorter command list.
from ..batch.guard import Terminated  # noqa: E402
from ..settings import check_environment  # noqa: E402
from ..text import printable  # noqa: E402
from . import evaluate as cli_evaluate  # noqa: E402
from . import export as cli_export  # noqa: E402
from . import finetune as cli_finetune  # noqa: E402
from . import models as cli_models  # noqa: E402
from . import predict as cli_predict  # noqa: E402
from . import train as cli_train  # noqa: E402

# subcommand name -> module with ``add_parser(subparsers)`` and ``run(args) -> int``
SUBCOMMANDS: dict[str, ModuleType] = {
    "predict": cli_predict,
    "models": cli_models,
    "train": cli_train,
    "finetune": cli_finetune,
    "evaluate": cli_evaluate,
    "export": cli_export,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lung-unet", description="Lung segmentation of chest X-rays with a U-Net.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS.values():
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        check_environment()  # a bad LUNG_UNET_* number is one line before any work, not one per file
        return int(args.run(args) or 0)
    except KeyboardInterrupt as exc:
        if isinstance(exc, Terminated):  # SIGTERM during predict: its workers are already stopped
            print("terminated", file=sys.stderr)
            return 128 + signal.SIGTERM
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError) as exc:
        if args.debug:
            raise
        print(f"error: {printable(exc)}", file=sys.stderr)
        return 1
