#!/usr/bin/env bash
# Install every Debian package vaefarm needs to build, test and run its demo.
# Idempotent: packages already installed are left alone; safe to run again.
# Usage: scripts/setup.sh        (as root, or with sudo available)
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config git ca-certificates
  libyaml-dev                      # film.yaml parser
  libjansson-dev                   # JSON (plan.json, --json, report.json)
  libcmocka-dev                    # C test framework used by ctest
  libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libavfilter-dev libswresample-dev
  ffmpeg                           # ffprobe/ffmpeg: test material and round-trip checks
  libopenmpi-dev openmpi-bin       # MPI
  libdnnl-dev                      # oneDNN 2.6 (CPU backend)
  python3 python3-numpy            # test-material and figure scripts (Debian's python)
  python3-torch python3-torchvision  # the PyTorch reference model (train/): golden tensors
  libopenblas0-pthread             # a fast BLAS for Debian's torch (its default is the reference BLAS)
  slurm-wlm munge                  # the one-node Slurm cluster the slurm tests bring up (scripts/slurm_cluster.sh)
  python3-matplotlib               # plots: scaling study (scripts/scaling.py), loss curves
  python3-opencv                   # Farneback optical-flow baseline (train/)
  strace                           # cli_farm: a file system without hard links (link(2) failures injected)
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PKGS[@]} packages already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; fi
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"
