"""``lung-unet train``: train a U-Net from scratch on one or more datasets."""

from __future__ import annotations

import argparse

from training.trainer import TrainConfig, train
from napari_lung_unet.images.conventions import check_convention

from .numbers import FRACTION, NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT, ranged


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = TrainConfig(data=[], output="")
    p = sub.add_parser("train", help="train a model from scratch", description=__doc__)
    p.add_argument("--data", action="append", required=True, metavar="DIR[@CONVENTION]",
                   help="dataset folder (repeatable); @whole-lung marks a dataset drawn with the lung behind the heart")
    p.add_argument("--conventions", default=",".join(d.conventions), metavar="LIST",
                   help="the conventions the model learns, one output each (e.g. lung-fields,whole-lung)")
    p.add_argument("--case-conventions", default="", metavar="CSV", help="per-case exceptions: dataset,case_id,convention")
    p.add_argument("--repeat", action="append", default=[], type=_repeat, metavar="CONVENTION=K",
                   help="show each case drawn in CONVENTION K times per epoch (repeatable), for a convention with few cases")
    p.add_argument("--output", required=True, metavar="DIR", help="run folder: best/, last.ckpt, log.csv, curves.png")
    p.add_argument("--epochs", type=POSITIVE_INT, default=d.epochs)
    p.add_argument("--batch-size", type=POSITIVE_INT, default=d.batch_size)
    p.add_argument("--lr", type=POSITIVE, default=d.lr)
    p.add_argument("--input-size", type=ranged(int, 32, 4096), default=d.input_size)
    p.add_argument("--base-channels", type=ranged(int, 1, 256), default=d.base_channels)
    p.add_argument("--depth", type=ranged(int, 1, 8), default=d.depth)
    p.add_argument("--norm", choices=["batch", "instance", "group", "none"], default=d.norm)
    p.add_argument("--upsample", choices=["transpose", "bilinear"], default=d.upsample)
    p.add_argument("--conditioning", choices=["head", "film"], default=d.conditioning,
                   help="how a model with several conventions tells them apart (see nn/model.py)")
    p.add_argument("--val-fraction", type=ranged(float, 0, 1, low_open=True, high_open=True), default=d.val_fraction)
    p.add_argument("--early-stopping", type=NON_NEGATIVE_INT, default=d.early_stopping, help="epochs without val Dice gain")
    p.add_argument("--seed", type=NON_NEGATIVE_INT, default=d.seed)
    p.add_argument("--workers", type=ranged(int, -1), default=d.workers, help="DataLoader workers (-1: auto)")
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda or mps")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--hflip", type=FRACTION, default=d.hflip, metavar="P", help="horizontal-flip probability (default 0: see training/augment.py)")
    p.add_argument("--max-steps-per-epoch", type=NON_NEGATIVE_INT, default=0, help=argparse.SUPPRESS)
    p.add_argument("--version", default=d.version, help="version name written into the model card")
    p.add_argument("--init-from", default="", metavar="MODEL_DIR", help="start from these weights (e.g. a second, lower-LR stage)")
    p.add_argument("--no-resume", action="store_true", help="start over even if OUTPUT has a checkpoint")
    p.set_defaults(run=run)


def _repeat(text: str) -> tuple[str, int]:
    name, sep, times = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected CONVENTION=K, got {text!r}")
    try:
        return check_convention(name.strip()), int(POSITIVE_INT(times))
    except ValueError as exc:  # an unknown convention; a bad K is already an ArgumentTypeError
        raise argparse.ArgumentTypeError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    cfg = TrainConfig(
        data=args.data, output=args.output, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        input_size=args.input_size, base_channels=args.base_channels, depth=args.depth, norm=args.norm,
        upsample=args.upsample, conditioning=args.conditioning, val_fraction=args.val_fraction, early_stopping=args.early_stopping,
        seed=args.seed, workers=args.workers, device=args.device, augment=not args.no_augment, hflip=args.hflip,
        max_steps_per_epoch=args.max_steps_per_epoch, version=args.version, resume=not args.no_resume, init_from=args.init_from,
        conventions=[check_convention(c.strip()) for c in args.conventions.split(",")], case_conventions=args.case_conventions,
        repeat=dict(args.repeat),
    )
    best = train(cfg)
    print(f"best model: {best}")
    return 0


def main() -> None:  # ``torchrun -m napari_lung_unet.cli.train ...``
    import sys

    parser = argparse.ArgumentParser(prog="napari_lung_unet.cli.train")
    sub = parser.add_subparsers()
    add_parser(sub)
    args = parser.parse_args(["train", *sys.argv[1:]])
    sys.exit(run(args))


if __name__ == "__main__":
    main()
