"""``python -m bench_support.metrics [--update docs/metrics.md]``: print the metric table, or
rewrite the copy between the ``<!-- metrics:begin -->`` / ``<!-- metrics:end -->`` markers."""

import argparse
import sys

from bench_support.metrics import markdown_table, readme_with_table

parser = argparse.ArgumentParser(prog="python -m bench_support.metrics", description=__doc__.splitlines()[0])
parser.add_argument("--update", metavar="docs/metrics.md", help="rewrite the table in this file")
args = parser.parse_args()
if args.update:
    with open(args.update) as fh:
        text = fh.read()
    with open(args.update, "w") as fh:
        fh.write(readme_with_table(text))
else:
    sys.stdout.write(markdown_table() + "\n")
