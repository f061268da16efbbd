"""Merge results: ``python -m medsr.results <run>/results.json ... [--out <folder>]`` prints one
thesis-style table of the rows of several runs (e.g. one per scale) and optionally writes them."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from medsr.evaluation.results import load_results, markdown_report, write_results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Merge results.json files into one thesis-style table."
    )
    parser.add_argument(
        "results", nargs="+", help="results.json files written by medsr.evaluate or medsr.train"
    )
    parser.add_argument(
        "--out", help="also write the merged rows as results.{json,csv,md} into this folder"
    )
    args = parser.parse_args(argv)
    rows = load_results(args.results)
    print(markdown_report(rows), end="")
    if args.out:
        write_results(rows, args.out)


if __name__ == "__main__":
    main()
