# scripts/lib/films.sh: sourced by scripts/material/20_films.sh (the test films) and
# scripts/make_eval_films.sh --validation (the validation films): one photo per shot with a camera
# move made by zoompan, hard cuts, checked as made. The caller sets: photos (the NN.png folder),
# dir (where films go), work (a private scratch folder), the arrays ff and ffv1, the string torgb,
# and a function die. How the films are tagged and muxed is here, the same for every caller:
film_tags=(-colorspace smpte170m -color_range tv)
film_bitexact=(-fflags +bitexact -flags:v +bitexact -flags:a +bitexact)

# y_md5 FILE OUT [sat]: per-frame md5 of the luma (or gray) plane, one line per decoded
# frame ("pts,md5"), into OUT; with a third argument, also the mean saturation over all frames
# (signalstats SATAVG, 8-bit scale) into OUT.sat. One decoding pass.
y_md5() {
  local f=$1 o=$2
  if [ $# -gt 2 ]; then
    "${ff[@]}" -i "$f" -map 0:v -vf extractplanes=y -f framemd5 "$o.md5" \
      -map 0:v -vf "signalstats,metadata=print:key=lavfi.signalstats.SATAVG:file='$o.log'" -f null -
    sed -n 's/^lavfi.signalstats.SATAVG=//p' "$o.log" | awk '{s += $1; n++} END {printf "%.3f\n", n ? s / n : 0}' >"$o.sat"
  else
    "${ff[@]}" -i "$f" -map 0:v -f framemd5 "$o.md5"
  fi
  grep -v '^#' "$o.md5" | awk -F, '{gsub(/ /, ""); print $3 "," $6}' >"$o"
}
# check_pair NAME FRAMES COLOUR GREY: the colour is colourful, the grey is gray and equal to the
# colour's luma frame for frame (same timestamps), both have FRAMES frames (decoded and in packets).
check_pair() {
  local name=$1 frames=$2 c=$3 g=$4 t n s pf
  t=$(mktemp -d "$work/check.XXXXXX")
  y_md5 "$c" "$t/c" sat
  y_md5 "$g" "$t/g"
  s=$(cat "$t/c.sat")
  awk -v s="$s" 'BEGIN {exit !(s >= 8)}' || die "$name: colour output is not colourful (SATAVG $s)"
  for f in "$t/c" "$t/g"; do
    n=$(wc -l <"$f")
    [ "$n" = "$frames" ] || die "$name: $f decodes to $n frames, expected $frames"
  done
  for f in "$c" "$g"; do
    case $f in *.mkv) ;; *) continue ;; esac   # packets = frames in Matroska (FFV1: intra)
    n=$(ffprobe -v error -count_packets -select_streams v:0 -show_entries stream=nb_read_packets \
      -of csv=p=0 "$f" | tr -d ', \n')
    [ "$n" = "$frames" ] || die "$name: $(basename "$f") has $n packets, expected $frames"
  done
  pf=$(ffprobe -v error -select_streams v:0 -show_entries stream=pix_fmt -of csv=p=0 "$g" | tr -d ', \n')
  [ "$pf" = gray ] || die "$name: grey output is $pf, not gray"
  cmp -s "$t/c" "$t/g" || die "$name: grey is not the colour's luma"
  rm -rf "$t"
}

# move_expr MOVE LEN: zoompan "z:x:y" expressions (scripts/lib/moves.sh)
. "$(dirname "${BASH_SOURCE[0]}")/moves.sh"

# make_film NAME W H AUDIO SHOTS...   (each shot "PHOTO MOVE LEN"; AUDIO: tones | noise)
make_film() {
  local name=$1 w=$2 h=$3 audio=$4; shift 4
  [ -s "$dir/$name.json" ] && return 0
  local inputs=() graph="" cat="" k=0 start=0 frames=0 spec photo move len z x y freq
  local starts=() lens=() photos_used=() moves=() fast=()
  local sw=$((w * 4)) sh=$((h * 4))   # zoompan crops from a 4x image: smooth sub-pixel moves
  for spec in "$@"; do
    read -r photo move len <<<"$spec"
    [ -s "$photos/$photo.png" ] || die "$name: no photo $photo.png"
    inputs+=(-i "$photos/$photo.png")
    IFS=: read -r z x y < <(move_expr "$move" "$len")
    graph+="[$k:v]scale=$sw:$sh:force_original_aspect_ratio=increase:out_color_matrix=bt601:out_range=tv"
    graph+=":flags=bicubic+accurate_rnd+full_chroma_int,crop=$sw:$sh,format=yuv444p,"
    graph+="zoompan=z='$z':x='$x':y='$y':d=$len:s=${w}x$h:fps=25,setsar=1[v$k];"
    if [ "$audio" = noise ]; then
      graph+="anoisesrc=color=pink:amplitude=0.25:sample_rate=48000:seed=$((1000 + k)),"
    else
      freq=$((300 + 110 * k))
      graph+="sine=frequency=$freq:sample_rate=48000,volume=0.5,"
    fi
    graph+="atrim=end_sample=$((len * 1920)),asetpts=N/SR/TB[a$k];"
    cat+="[v$k][a$k]"
    starts+=("$start"); lens+=("$len"); photos_used+=("$photo"); moves+=("$move")
    [ "$move" = fast_zoom ] && fast+=("[$((start + 20)),$((start + 31))]")
    start=$((start + len)); k=$((k + 1))
  done
  frames=$start
  # One pass makes the colour film, its grey twin (extractplanes=y: exactly the colour's Y plane)
  # and the references (each shot's first colour frame). The split's branches all take yuv444p
  # (no format=gray after a split: see DATA.md's trap); check_pair verifies the result.
  local sel="" i
  for i in "${starts[@]}"; do sel+="${sel:++}eq(n\\,$i)"; done
  graph+="${cat}concat=n=$k:v=1:a=1[v][a];[v]format=yuv444p,split=3[vc][vg0][vr0];"
  graph+="[vg0]extractplanes=y[vg];[vr0]select='$sel',${torgb}[vr];[a]asplit[ac][ag]"
  local c="$work/${name}_color.mkv" g="$work/${name}_grey.mkv"
  rm -f "$work/${name}_ref_"*.png
  "${ff[@]}" "${inputs[@]}" -filter_complex "$graph" \
    -map "[vc]" -map "[ac]" "${ffv1[@]}" -pix_fmt yuv444p "${film_tags[@]}" -c:a flac "${film_bitexact[@]}" \
      -metadata title="vaefarm test film $name (colour)" "$c" \
    -map "[vg]" -map "[ag]" "${ffv1[@]}" -pix_fmt gray "${film_tags[@]}" -c:a flac "${film_bitexact[@]}" \
      -metadata title="vaefarm test film $name (grey)" "$g" \
    -map "[vr]" -fps_mode passthrough -start_number 0 -f image2 "$work/${name}_ref_%d.png"
  check_pair "$name" "$frames" "$c" "$g"
  [ -s "$work/${name}_ref_$((k - 1)).png" ] && [ ! -e "$work/${name}_ref_$k.png" ] \
    || die "$name: wrong number of reference frames"

  local cuts="" shots="" fm=""
  for ((i = 0; i < k; i++)); do
    [ "$i" -gt 0 ] && cuts+="${cuts:+,}${starts[$i]}"
    shots+="${shots:+,}"$'\n    '"{\"start\":${starts[$i]},\"end\":$((starts[i] + lens[i])),"
    shots+="\"reference\":\"${name}_ref_$i.png\",\"photo\":\"${photos_used[$i]}.png\",\"move\":\"${moves[$i]}\"}"
  done
  fm=$(IFS=,; echo "${fast[*]}")
  for ((i = 0; i < k; i++)); do mv "$work/${name}_ref_$i.png" "$dir/${name}_ref_$i.png"; done
  mv "$c" "$dir/${name}_color.mkv"
  mv "$g" "$dir/${name}_grey.mkv"
  printf '{"frames":%d,"fps":[25,1],"width":%d,"height":%d,"cuts":[%s],\n  "fast_motion":[%s],\n  "shots":[%s\n  ]}\n' \
    "$frames" "$w" "$h" "$cuts" "$fm" "$shots" >"$work/$name.json"
  mv "$work/$name.json" "$dir/$name.json"
}
