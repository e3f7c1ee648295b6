#!/usr/bin/env python3
"""One query's results as a pyarrow Table (to_arrow), timed from process
start, for a ratio against the CLI running the same query:

    python examples/python/to_arrow.py --sql "SELECT ..."
    rookery -q --format csv -c "SELECT ..." > /dev/null
"""

import argparse
import sys
import time

started = time.monotonic()

import rookery  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sql", required=True)
    args = parser.parse_args()
    table = rookery.connect(progress=False).sql(args.sql).to_arrow()
    print(f"{table.num_rows} rows, {table.nbytes / 1e6:.1f} MB in {time.monotonic() - started:.2f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
