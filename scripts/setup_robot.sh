#!/usr/bin/env bash
# Set up the manipulation extras (docs/robot.md): system packages for headless MuJoCo and SAPIEN
# rendering, then a separate venv (.venv-robot) with wav[robot,maniskill] under constraints.txt.
# Idempotent: every step checks before it acts. Usage: bash scripts/setup_robot.sh [--no-apt] [--no-venv]
#
# SAPIEN (ManiSkill 3) needs a Vulkan driver; on CPU-only machines that is Mesa's lavapipe, which must
# be >= 24 (Debian bookworm's 22.3 fails with ErrorIncompatibleDriver). bookworm-backports has 25.x.
# The backports source reuses the mirror of the machine's own Debian sources: this file names no host.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${WAV_ROBOT_VENV:-$ROOT/.venv-robot}"
PYTHON="${PYTHON:-python3}"
DO_APT=1
DO_VENV=1
for arg in "$@"; do
  case "$arg" in
    --no-apt) DO_APT=0 ;;
    --no-venv) DO_VENV=0 ;;
    *) echo "usage: $0 [--no-apt] [--no-venv]" >&2; exit 2 ;;
  esac
done

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# The Debian archive URI of the machine's existing apt sources (deb822 *.sources or one-line *.list).
debian_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list; do
    [ -f "$f" ] || continue
    awk '
      /^[[:space:]]*#/ { next }
      /^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }
      /^deb[[:space:]]/ { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/ && $i ~ /\/debian\/?$/) { print $i; exit } }
    ' "$f"
  done | head -n 1
}

lavapipe_major() {
  { dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true; } | sed 's/^[0-9]*://' | cut -d. -f1
}

if [ "$DO_APT" = 1 ]; then
  codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
  need_apt=0
  for pkg in libosmesa6 libegl1 libgl1 libvulkan1 vulkan-tools; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt=1
  done
  major="$(lavapipe_major)"
  if [ -z "$major" ] || [ "$major" -lt 24 ]; then need_apt=1; fi
  if [ "$need_apt" = 1 ]; then
    backports=""
    if [ "$codename" = bookworm ]; then
      list=/etc/apt/sources.list.d/wav-bookworm-backports.list
      if [ ! -f "$list" ]; then
        mirror="$(debian_mirror)"
        if [ -z "$mirror" ]; then
          echo "setup_robot: no Debian archive found in /etc/apt/sources*; add bookworm-backports by hand" >&2
          exit 1
        fi
        keyring=/usr/share/keyrings/debian-archive-keyring.gpg
        echo "deb [signed-by=$keyring] $mirror bookworm-backports main" | $SUDO tee "$list" >/dev/null
      fi
      backports="-t bookworm-backports"
    fi
    $SUDO apt-get update -qq
    # Mesa from backports for Vulkan (lavapipe); the GL/OSMesa/EGL libraries for MuJoCo rendering.
    # shellcheck disable=SC2086
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $backports \
      mesa-vulkan-drivers libvulkan1 vulkan-tools libegl-mesa0 libgl1-mesa-dri libglx-mesa0 libosmesa6
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libegl1 libgl1
  fi
  echo "setup_robot: mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)"
fi

if [ "$DO_VENV" = 1 ]; then
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
  fi
  if ! "$VENV/bin/python" -c "import robosuite, mani_skill, h5py, wav" >/dev/null 2>&1; then
    "$VENV/bin/pip" install -q -c "$ROOT/constraints.txt" -e "$ROOT[robot,maniskill,test]"
  fi
  "$VENV/bin/python" - <<'PY'
import importlib.metadata as md
print("setup_robot:", ", ".join(f"{p} {md.version(p)}" for p in ("torch", "numpy", "mujoco", "robosuite", "mani-skill", "sapien", "h5py")))
PY
fi
