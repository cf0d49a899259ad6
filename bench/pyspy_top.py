"""Summarise a py-spy `--format raw` profile (collapsed stacks): the functions
with the most samples, as leaf (self) and anywhere on the stack (inclusive).

    python bench/pyspy_top.py /tmp/prof/mailbag-search.txt [--top 25] [--match mailbag]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("profile", type=Path)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--match", default="", help="inclusive list: only frames containing this")
    args = ap.parse_args()
    leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in args.profile.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        # The first frame is the thread ("process N:..." / "thread ...") when present.
        total += n
        leaf[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    if not total:
        print("no samples", file=sys.stderr)
        return 1
    print(f"{total} samples\n\nself (leaf):")
    for f, n in leaf.most_common(args.top):
        print(f"{100 * n / total:6.1f}%  {f}")
    print("\ninclusive:")
    shown = 0
    for f, n in inclusive.most_common():
        if args.match not in f:
            continue
        print(f"{100 * n / total:6.1f}%  {f}")
        shown += 1
        if shown >= args.top:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
