#!/usr/bin/python3
"""A before/after strip of a colorized film: for a few frames the grey input above the colour
output, labelled, as one PNG (README's picture of the demo film), optionally after the reference.

    scripts/before_after.py GREY COLOUR OUT.png [--reference IMAGE] [--frames 40,160,300,450]
                            [--height 160]

(The README's strip leaves the reference out: the demo's is a cimg-doc postcard, which
docs/DATA_SOURCES.md keeps out of the repository.)

GREY and COLOUR are the input film and vaefarm's output (any format FFmpeg reads; the same frame
count); frames are counted from 0 in decode order. Needs Debian's /usr/bin/python3 (numpy, cv2)
and ffmpeg.
"""
import argparse
import os
import subprocess
import sys

import cv2
import numpy as np


def frame(path, n, height):
    """Frame n of a film as RGB uint8, scaled to `height` rows (aspect kept)."""
    cmd = ["ffmpeg", "-loglevel", "error", "-i", path, "-vf",
           "select=eq(n\\,%d),scale=-2:%d:flags=area,format=rgb24" % (n, height),
           "-frames:v", "1", "-f", "image2pipe", "-vcodec", "png", "-"]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        said = r.stderr.decode(errors="replace").strip().splitlines()
        sys.exit("before_after: %s" % (said[-1] if said else "%s: ffmpeg failed" % path))
    png = r.stdout
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR) if png else None
    if img is None:
        sys.exit("before_after: %s has no frame %d" % (path, n))
    return img  # BGR, as cv2 writes it


def label(img, text):
    out = img.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 16), (0, 0, 0), -1)
    cv2.putText(out, text, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("grey")
    ap.add_argument("colour")
    ap.add_argument("out")
    ap.add_argument("--reference", help="an image shown first (the shot's reference)")
    ap.add_argument("--frames", default="40,160,300,450")
    ap.add_argument("--height", type=int, default=160)
    a = ap.parse_args()
    try:
        frames = [int(x) for x in a.frames.split(",")]
    except ValueError:
        sys.exit("before_after: --frames %s: frame numbers, comma-separated" % a.frames)
    if any(n < 0 for n in frames) or not 16 <= a.height <= 4096:
        sys.exit("before_after: --frames are 0 or more, --height 16 to 4096")
    if os.path.splitext(a.out)[1].lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        sys.exit("before_after: %s: name the strip .png (or .jpg, .webp)" % a.out)
    gap = 4
    cols = []
    h = a.height
    if a.reference:
        ref = cv2.imread(a.reference, cv2.IMREAD_COLOR)
        if ref is None:
            sys.exit("before_after: cannot read %s" % a.reference)
        ref = cv2.resize(ref, (max(1, round(ref.shape[1] * (2 * h + gap) / ref.shape[0])), 2 * h + gap),
                         interpolation=cv2.INTER_AREA)
        cols.append(label(ref, "reference"))
    for n in frames:
        g, c = frame(a.grey, n, h), frame(a.colour, n, h)
        if g.shape != c.shape:
            sys.exit("before_after: frame %d is %dx%d in %s and %dx%d in %s: give the same film's "
                     "grey and colour" % (n, g.shape[1], g.shape[0], a.grey, c.shape[1], c.shape[0],
                                          a.colour))
        sep = np.full((gap, g.shape[1], 3), 255, np.uint8)
        cols.append(np.vstack([label(g, "input, frame %d" % n), sep, label(c, "vaefarm")]))
    vsep = np.full((2 * h + gap, gap, 3), 255, np.uint8)
    strip = cols[0]
    for col in cols[1:]:
        strip = np.hstack([strip, vsep, col])
    if not cv2.imwrite(a.out, strip):
        sys.exit("before_after: cannot write %s" % a.out)
    print("before_after: wrote %s (%dx%d)" % (a.out, strip.shape[1], strip.shape[0]))


if __name__ == "__main__":
    main()
