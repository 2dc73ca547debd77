"""Regenerate the anomaly 'Evidence that it learns' tables of docs/anomaly.md (or, with --pictures DIR, the
anomaly-map pictures) from ``clipsuite.anomaly.evidence``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    from clipsuite.anomaly.evidence import build_tables, pictures
    from clipsuite.core.pretrain import ensure_pretrained

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default=None, help="model spec (default: the cached pretrained backbone)")
    parser.add_argument("--pictures", default=None, metavar="DIR",
                        help="write the anomaly-map pictures (PNG) to DIR instead of printing the tables")
    args = parser.parse_args(argv)
    backbone = args.backbone or str(ensure_pretrained(progress=True))
    if args.pictures:
        for path in pictures(backbone, args.pictures):
            print(path)
    else:
        print(build_tables(backbone))


if __name__ == "__main__":
    main()
