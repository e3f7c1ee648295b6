#!/usr/bin/env python3
"""The seed's count step from Python, for benchmarks beside
shared/bench/daft_count.py: every non-overlapping 64x64 tile of the images
classified (image_tiles + cnn_classify, ONNX Runtime), tiles counted per
class and image (GROUP BY), the Kaggle CSV written from pandas.

    python examples/python/seed_count.py --model M.onnx --images DIR --out sub.csv
"""

import argparse
import sys
import time

import rookery

CLASSES = ["adult_males", "subadult_males", "adult_females", "juveniles", "pups"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--images", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--memory-limit", default=None)
    args = parser.parse_args()
    started = time.monotonic()
    ctx = rookery.connect(memory_limit=args.memory_limit, progress=False)
    counts = ", ".join(f"sum(CASE WHEN label = '{c}' THEN 1 ELSE 0 END) AS {c}" for c in CLASSES)
    frame = ctx.sql(
        f"""
        SELECT CAST(name AS BIGINT) AS test_id, {counts}
        FROM (SELECT name, cnn_classify('{args.model}', tile) AS label
              FROM image_tiles('{args.images}', 64, 64))
        GROUP BY name ORDER BY test_id
        """
    )
    submission = frame.to_pandas()
    submission.to_csv(args.out, index=False)
    elapsed = time.monotonic() - started
    print(f"{len(submission)} images in {elapsed:.2f} s ({len(submission) / elapsed:.3f} images/s)", file=sys.stderr)


if __name__ == "__main__":
    main()
