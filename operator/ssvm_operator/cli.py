"""The `ssvm-operator` command line: run the operator, print CRDs, and (later) render and devcluster."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ssvm-operator")
    parser.parse_args(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
