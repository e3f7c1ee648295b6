#!/usr/bin/env python3
"""Full-size frames to numpy, counting copies: reads every image of a
folder with to_pandas() (cells are rookery.Image numpy arrays) and reports
the pixel bytes, the bytes Python allocated on the way (tracemalloc: numpy
and pyarrow objects, not the engine's buffers) and the process's peak RSS
against the decoded size. No copy beyond the decoded frame itself means
Python allocations near zero and peak RSS near the decoded bytes.

    python examples/python/to_numpy.py --images DIR
"""

import argparse
import resource
import sys
import time
import tracemalloc

import numpy as np

import rookery


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True)
    args = parser.parse_args()
    ctx = rookery.connect(progress=False)
    started = time.monotonic()
    tracemalloc.start()
    frame = ctx.sql(f"SELECT name, image FROM images('{args.images}')").to_pandas()
    _, python_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    images = frame["image"].tolist()
    pixel_bytes = sum(image.nbytes for image in images)
    owning = sum(1 for image in images if image.flags.owndata)
    total = sum(int(np.asarray(image)[::97, ::97].sum()) for image in images)  # touch the pixels
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        f"{len(images)} frames, {pixel_bytes / 1e9:.3f} GB of pixels in {time.monotonic() - started:.1f} s; "
        f"arrays owning their data: {owning}; Python allocations peak {python_peak / 1e6:.1f} MB; "
        f"peak RSS {peak_rss / 1e9:.3f} GB = {peak_rss / pixel_bytes:.2f}x the pixels (checksum {total})",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
