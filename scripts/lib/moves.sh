# scripts/lib/moves.sh: camera moves for the test films, sourced by scripts/material/*.sh.
# move_expr MOVE LEN -> "z:x:y" zoompan expressions. P runs 0..1 over the shot; the frame is
# always inside the photo (zoom >= 1).
move_expr() {
  local m=$1 len=$2 P cx cy
  P="(on/$((len > 1 ? len - 1 : 1)))"
  cx="(iw-iw/zoom)/2"; cy="(ih-ih/zoom)/2"
  case $m in
    zoom_in)   echo "1+0.35*$P:$cx:$cy" ;;
    zoom_out)  echo "1.35-0.35*$P:$cx:$cy" ;;
    pan_right) echo "1.3:(iw-iw/zoom)*$P:$cy" ;;
    pan_left)  echo "1.3:(iw-iw/zoom)*(1-$P):$cy" ;;
    tilt_down) echo "1.3:$cx:(ih-ih/zoom)*$P" ;;
    tilt_up)   echo "1.3:$cx:(ih-ih/zoom)*(1-$P)" ;;
    diagonal)  echo "1.15+0.2*$P:(iw-iw/zoom)*$P:(ih-ih/zoom)*(1-$P)" ;;
    # the same photo framed tight on its lower right, drifting slowly (a "reframe" cut)
    reframe)   echo "1.8:(iw-iw/zoom)*(0.85+0.1*$P):(ih-ih/zoom)*0.8" ;;
    # holds for 20 frames, zooms x2.2 in 10 frames (20..29), holds: fast motion, not a cut
    fast_zoom) echo "if(lt(on,20),1,if(lt(on,30),1+1.2*(on-19)/10,2.2)):$cx:$cy" ;;
    *) die "unknown move $m" ;;
  esac
}
