#!/usr/bin/env bash
# Install the Debian/Ubuntu packages the project needs (fonts and word list for the synthetic
# data generator, Tesseract as the evaluation peer, redis-server for the service and tests).
# Installs only what is missing; needs root or sudo when something is missing.
set -euo pipefail
PACKAGES=(
  fonts-dejavu fonts-liberation2 fonts-urw-base35 fonts-noto-core fonts-comic-neue fonts-humor-sans wamerican
  tesseract-ocr tesseract-ocr-eng
  redis-server
  chromium chromium-driver
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
echo "system packages: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
