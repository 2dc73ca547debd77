"""Regenerate the BiomedCoOp few-shot and base-to-novel tables of docs/medical.md from
``clipsuite.medical.evidence``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: Sequence[str] | None = None) -> None:
    from clipsuite.core.models import load_model
    from clipsuite.medical.evidence import evidence_tables
    from clipsuite.medical.fewshot import COMPARE_METHODS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shots", default="1,4,16")
    parser.add_argument("--b2n-shots", default="16")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--methods", default=",".join(COMPARE_METHODS))
    parser.add_argument("--model", default=None, help="model spec (default: the pretrained synthetic backbone)")
    args = parser.parse_args(argv)
    if args.model is None:
        from clipsuite.core.pretrain import ensure_pretrained

        args.model = str(ensure_pretrained(progress=True))
    clip = load_model(args.model, device="cpu", precision="fp32")
    print(evidence_tables(clip, _ints(args.shots), _ints(args.b2n_shots), _ints(args.seeds), args.methods.split(",")))


if __name__ == "__main__":
    main()
