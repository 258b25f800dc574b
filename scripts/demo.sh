#!/usr/bin/env bash
# The demo, end to end on a fresh machine: install what is needed, build vaefarm, fetch a real
# black-and-white film (Shepard, Calais 1906 French Grand Prix, public domain, shipped by Debian's
# python-nbsphinx-doc) and a colour reference photo (cimg-doc), write out/demo/film.yaml, then
# colorize it on 2 MPI ranks with the bundled model (models/vaefarm-tiny.safetensors).
# Usage: scripts/demo.sh     (output in out/demo/)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh >/dev/null
mkdir -p build && cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >build/demo.configure.log 2>&1 \
  || { cat build/demo.configure.log; exit 1; }
cmake --build build -j"$(nproc)" --target vaefarm >/dev/null
vaefarm="$root/build/coordinator/vaefarm"

cache=${VF_CACHE_DIR:-$HOME/.cache/vaefarm}
demo="$root/out/demo"
mkdir -p "$demo"
. "$root/scripts/lib/fetch.sh"
fetch() { vf_fetch "$1" || exit 1; }
fetch python-nbsphinx-doc
fetch cimg-doc

film="$cache/pkg/python-nbsphinx-doc/usr/share/doc/python-nbsphinx/html/www/wikimediacommons/Shepard_Calais_1906_FrenchGP.ogv.160p.ogv"
# a colourful landscape postcard (Rio de Janeiro) as the reference for the whole film
ref="$cache/pkg/cimg-doc/usr/share/doc/cimg-dev/html/img/postcard1.jpg"
if [ ! -s "$demo/calais1906.mkv" ]; then
  # The source is Theora in Ogg; FFV1 in Matroska keeps every frame and is frame-exact to seek.
  ffmpeg -loglevel error -y -i "$film" -map 0:v -c:v ffv1 -pix_fmt gray "$demo/calais1906.tmp.mkv"
  mv "$demo/calais1906.tmp.mkv" "$demo/calais1906.mkv"
fi
ffmpeg -loglevel error -y -i "$ref" "$demo/reference.png"
cat >"$demo/film.yaml" <<YAML
# The demo film: Shepard, Calais 1906 (public domain), colorized from one reference photo.
version: 1
input: calais1906.mkv
output: calais1906_color.mkv
shots:
  detect: auto
default_reference: reference.png
chunks:
  length: 60
  warmup: 8
encode:
  codec: ffv1
YAML

echo "== vaefarm probe"
"$vaefarm" probe "$demo/calais1906.mkv"
echo
echo "== vaefarm plan"
"$vaefarm" plan "$demo/film.yaml" --simulate 4

ranks=${VF_DEMO_RANKS:-2}
echo "== mpirun -np $ranks vaefarm film.yaml (the bundled tiny model: trained on a CPU for 11.1 hours,"
echo "   better than colour transfer, still far from good: docs/QUALITY.md)"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun -np "$ranks" --oversubscribe "$vaefarm" "$demo/film.yaml"
echo
echo "== vaefarm probe of the colour film"
"$vaefarm" probe "$demo/calais1906_color.mkv"
# a before/after strip: the reference, then four frames, grey above, colour below (README's picture)
/usr/bin/python3 scripts/before_after.py "$demo/calais1906.mkv" "$demo/calais1906_color.mkv" \
  "$demo/before_after.png" --reference "$demo/reference.png" --frames 30,100,180,260
echo
echo "demo: $demo/calais1906_color.mkv (the colour film, with the source's timing), report in"
echo "      $demo/calais1906_color.mkv.vaefarm/report.json, a before/after strip in $demo/before_after.png."
echo "      Run the same command again: it resumes (every chunk is journaled) and finishes at once."
