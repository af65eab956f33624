#!/usr/bin/env bash
# Makes a Debian/Ubuntu machine ready for `npm test`: installs the real clients and tools the tests drive (only
# those missing) and checks Node and the Docker engine. Idempotent; run as root or with sudo available.
#
#   scripts/test-setup.sh                 install what is missing, then check Node and the engine
#   scripts/test-setup.sh --check         install nothing: one line naming what is missing, exit 1 if anything is
#   scripts/test-setup.sh --check --no-docker    the same without the engine (SKIP_CONTAINER_TESTS=1)
#
# test/global-setup.ts runs the --check form before every test run, so this list is the only one.
set -euo pipefail
check_only=false docker_needed=true
for arg; do
  case $arg in
    --check) check_only=true ;;
    --no-docker) docker_needed=false ;;
    *) echo "usage: $0 [--check [--no-docker]]" >&2; exit 2 ;;
  esac
done

# command-or-file:Debian package
requirements=(
  curl:curl                                             # integration: curl as an FTPS client
  lftp:lftp                                             # integration: lftp
  python3:python3                                       # integration: Python ftplib
  rclone:rclone                                         # integration: rclone's FTP backend
  java:default-jre-headless                             # integration: Apache Commons Net FTPSClient,
  /usr/share/java/commons-net.jar:libcommons-net-java   #   from Debian's jar
  faketime:faketime                                     # integration: TLS session lifetime on a moved clock
  haproxy:haproxy                                       # PROXY protocol interop
  htpasswd:apache2-utils                                # bcrypt hashes as users make them
)

have() { if [[ $1 == /* ]]; then [[ -e $1 ]]; else command -v "$1" >/dev/null 2>&1; fi; }

missing=()
for pair in "${requirements[@]}"; do
  have "${pair%%:*}" || missing+=("${pair#*:}")
done
# The compose restart test: Compose v2 (`docker compose`) or v1 (`docker-compose`, what Debian 12 ships).
if $docker_needed && ! docker compose version >/dev/null 2>&1 && ! have docker-compose; then missing+=(docker-compose); fi

problems=()
if ((${#missing[@]})) && $check_only; then
  problems+=("missing packages: ${missing[*]}")
elif ((${#missing[@]})); then
  sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null || { echo "test-setup: missing ${missing[*]}; run this script as root"; exit 1; }
    sudo=(sudo)
  fi
  command -v apt-get >/dev/null || { echo "test-setup: missing ${missing[*]}; install them with your package manager"; exit 1; }
  echo "test-setup: installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  $check_only || echo "test-setup: every client the tests drive is installed"
fi

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
((node_major >= 24)) || problems+=("Node 24 or later is needed (install it from nodejs.org or your distribution)")

if ! $docker_needed; then
  :
elif ! command -v docker >/dev/null; then
  problems+=("no Docker engine (apt-get install docker.io, or Docker's docker-ce, and start it; or SKIP_CONTAINER_TESTS=1 to run without the container suite)")
elif ! docker info >/dev/null 2>&1; then
  problems+=("the Docker engine does not answer (start it: systemctl start docker, or dockerd &; or SKIP_CONTAINER_TESTS=1 to run without the container suite)")
fi

if ((${#problems[@]})); then
  joined=$(printf '; %s' "${problems[@]}")
  echo "test-setup: ${joined:2}"
  exit 1
fi
$check_only || echo "test-setup: ready (node $(node --version)$($docker_needed && echo ', Docker engine answers'))"
