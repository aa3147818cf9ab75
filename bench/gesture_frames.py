"""What the gesture model's input costs: decoding the body-sampled frames again (what `tasks.predict.inference` does)
against storing them (a 224 px letterboxed JPEG per body sample, q90, as the crops are stored).

    python bench/gesture_frames.py VIDEO... [--body-fps 1]

Prints per video: body samples, decode + letterbox time per sample, and the size a stored frame would take.
"""

import argparse
import time

import cv2
import numpy as np

from tasks.extract.decode import decode_frames, open_video
from tasks.predict.prepare import letterbox


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="+")
    parser.add_argument("--body-fps", type=float, default=1.0)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    for path in args.videos:
        reader = open_video(path)
        fps, n = reader.get_avg_fps(), len(reader)
        frames = tuple(sorted({int(round(k * fps / args.body_fps)) for k in range(int(n / fps * args.body_fps))}))
        start = time.perf_counter()
        boxed = [letterbox(pixels, args.size)[0] for _, pixels in decode_frames(open_video(path), frames)]
        seconds = time.perf_counter() - start
        sizes = [len(cv2.imencode(".jpg", b[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1]) for b in boxed]
        per_hour = np.mean(sizes) * 3600 * args.body_fps / 1e6
        decode_ms = 1000 * seconds / len(frames)
        print(
            f"{path}: {len(frames)} body samples, decode + letterbox {decode_ms:.1f} ms each; "
            f"stored {args.size} px JPEG q90: {np.mean(sizes) / 1000:.1f} kB each, {per_hour:.0f} MB per hour"
        )


if __name__ == "__main__":
    main()
