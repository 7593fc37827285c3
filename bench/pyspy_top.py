"""Summarise a py-spy raw (collapsed stacks) profile: where the GIL time goes.

    BENCH_PYSPY=$(which py-spy) python -m bench.run --keep --only fires ...
    python -m bench.pyspy_top <workdir>/sqlite-fires-200-spread.pyspy.txt [--top 30]

Prints, per function (file:function), the share of samples in which it is on the
stack (inclusive) and on top of it (self).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME_LINE = re.compile(r":\d+\)?$")


def frame_name(frame: str) -> str:
    # py-spy frames look like "function (path/to/file.py:123)".
    name = _FRAME_LINE.sub(")", frame)
    name = re.sub(r"\(.*/(site-packages|work/main)/", "(", name)
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    with open(args.profile, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            match = _LINE.match(line.rstrip("\n"))
            if not match:
                continue
            count = int(match["count"])
            frames = [frame_name(f) for f in match["stack"].split(";")]
            total += count
            for name in set(frames):
                inclusive[name] += count
            own[frames[-1]] += count
    print("%d samples" % total)
    print("\n-- inclusive --")
    for name, count in inclusive.most_common(args.top):
        print("%5.1f%%  %s" % (100 * count / total, name))
    print("\n-- self --")
    for name, count in own.most_common(args.top):
        print("%5.1f%%  %s" % (100 * count / total, name))


if __name__ == "__main__":
    main()
