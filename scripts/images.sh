#!/usr/bin/env bash
# Build every container image of this repository on a local Docker Engine, and (with `test`) run the
# container tests in tests/containers against them. Works where no container registry is reachable.
#
#   bash scripts/images.sh                 # build the 10 images, print their sizes   (make images)
#   bash scripts/images.sh test [ARGS]     # build, then `pytest tests/containers ARGS` (make test-containers)
#   bash scripts/images.sh bases           # only the local base images
#
# What it does, in order:
#  1. A Docker Engine: the one DOCKER_HOST (or /var/run/docker.sock) points at when it answers; otherwise,
#     as root, a private dockerd (own data root, exec root, pid file and socket under $DANUBE_DOCKER_STATE,
#     default /var/lib/danube-connect-docker) started now and stopped at the end. Runs are serialised by
#     a lock there, so two checkouts never share a half-built daemon.
#  2. Local base images, rebuilt only when their recipe changed (a hash of the recipe is a label):
#       danube-local/python   Debian bookworm (debootstrap minbase) + python3 — stands in for python:3.11-slim
#       danube-local/uv       the uv binary bootstrap.sh installed — stands in for ghcr.io/astral-sh/uv
#       danube-local/nginx, /mosquitto, /prometheus, /postgres   Debian packages on the base (stand-ins
#       for the compose files' third-party images and the CDC image test; deploy/docker/local/Dockerfile)
#     The Debian mirror is read from this machine's apt sources at run time.
#  3. The 10 images from their Dockerfiles, unchanged: the bases come in as build arguments, the package
#     index is reached with --network host and this machine's CA bundle passed as a BuildKit secret
#     (mounted for one RUN, never stored in a layer). Tag: ${DANUBE_CONNECT_REGISTRY}/<name>:${DANUBE_CONNECT_TAG}
#     (defaults as in the compose files), so `docker compose up` finds them.
#
# Failure: any step failing stops the script with its message and a non-zero exit; a private daemon is
# stopped on every exit path.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

# Debian's docker.io client (/usr/bin/docker) has BuildKit built in; another `docker` earlier on the PATH
# may need a buildx plugin that is not installed.
if [ -z "${DOCKER:-}" ]; then
    if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=$(command -v docker || true); fi
fi
export DOCKER
export DOCKER_BUILDKIT=1
STATE=${DANUBE_DOCKER_STATE:-/var/lib/danube-connect-docker}
RUNDIR=${DANUBE_DOCKER_RUN:-/run/danube-connect-docker}
REGISTRY=${DANUBE_CONNECT_REGISTRY:-ghcr.io/danube-connect}
TAG=${DANUBE_CONNECT_TAG:-dev}
SUITE=bookworm
CA_BUNDLE=${DANUBE_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
STARTED_DAEMON=0

log() { printf 'images: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# --- 1. Docker Engine ------------------------------------------------------------------------------
daemon_answers() { "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

stop_daemon() {
    [ "$STARTED_DAEMON" = 1 ] || return 0
    local pid
    pid=$(cat "$RUNDIR/docker.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        log "stopping the private dockerd (pid $pid)"
        kill -TERM "$pid"
        for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    STARTED_DAEMON=0
}

ensure_daemon() {
    [ -n "$DOCKER" ] && [ -x "$DOCKER" ] || die "no docker client (install Debian's docker.io: apt-get install docker.io)"
    if [ -n "${DOCKER_HOST:-}" ] && daemon_answers; then
        log "using the Docker Engine at $DOCKER_HOST"; return 0
    fi
    if [ -z "${DOCKER_HOST:-}" ] && [ -S /var/run/docker.sock ] && daemon_answers; then
        log "using the Docker Engine at /var/run/docker.sock"; return 0
    fi
    export DOCKER_HOST="unix://$RUNDIR/docker.sock"
    if daemon_answers; then
        log "using the private Docker Engine at $DOCKER_HOST (already running; left running)"; return 0
    fi
    [ "$(id -u)" = 0 ] || die "no Docker Engine answers and starting one needs root (or set DOCKER_HOST)"
    command -v dockerd >/dev/null 2>&1 || die "dockerd not installed (apt-get install docker.io)"
    mkdir -p "$STATE/data" "$RUNDIR/exec"
    log "starting a private dockerd (data root $STATE/data, socket $RUNDIR/docker.sock)"
    STARTED_DAEMON=1
    # setsid: the daemon does not get the terminal's signals; it is stopped by pid in stop_daemon.
    setsid dockerd \
        --host "$DOCKER_HOST" \
        --data-root "$STATE/data" \
        --exec-root "$RUNDIR/exec" \
        --pidfile "$RUNDIR/docker.pid" \
        --storage-driver overlay2 \
        --exec-opt native.cgroupdriver=cgroupfs \
        >"$STATE/dockerd.log" 2>&1 </dev/null &
    for _ in $(seq 1 120); do
        daemon_answers && { log "dockerd ready"; return 0; }
        sleep 0.5
    done
    tail -20 "$STATE/dockerd.log" >&2 || true
    die "dockerd did not answer within 60 s (log: $STATE/dockerd.log)"
}

# --- 2. local base images --------------------------------------------------------------------------
apt_mirror() {
    # The first Debian archive this machine's apt uses (deb822 .sources or one-line sources.list).
    local uri
    uri=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' \
        | grep -v -- '-security' | head -1 || true)
    if [ -z "$uri" ]; then
        uri=$(grep -h '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v -- '-security' \
            | head -1 || true)
    fi
    [ -n "$uri" ] || die "no Debian mirror found in /etc/apt/sources.list*"
    echo "$uri"
}

image_label() { "$DOCKER" image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true; }

# Everything that decides a base's content, hashed; a change rebuilds that base (and only that one).
python_key() {
    { declare -f build_python_base; echo "$SUITE"; apt_mirror; } | sha256sum | cut -c1-16
}

uv_key() {
    { declare -f build_uv_base; "$UV" --version; sha256sum <"$UV"; } | sha256sum | cut -c1-16
}

build_python_base() {
    local dir mirror
    command -v debootstrap >/dev/null 2>&1 || die "debootstrap not installed (apt-get install debootstrap)"
    mirror=$(apt_mirror)
    dir=$(mktemp -d "$STATE/rootfs.XXXXXX")
    log "debootstrap $SUITE (minbase + python3) from this machine's apt mirror"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        "$SUITE" "$dir" "$mirror" >"$STATE/debootstrap.log" 2>&1 \
        || { tail -20 "$STATE/debootstrap.log" >&2; rm -rf "$dir"; die "debootstrap failed"; }
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/tmp/* \
        "$dir"/usr/share/doc/* "$dir"/usr/share/man/*
    tar -C "$dir" -c . | "$DOCKER" import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change "LABEL danube.local.key=$1" \
        --change 'CMD ["python3"]' \
        - danube-local/python:latest >/dev/null
    rm -rf "$dir"
}

build_uv_base() {
    # The same layout as the uv image: the static binary at /uv.
    local dir
    dir=$(mktemp -d "$STATE/uv.XXXXXX")
    cp "$UV" "$dir/uv"
    tar -C "$dir" -c uv | "$DOCKER" import --change "LABEL danube.local.key=$1" - danube-local/uv:latest >/dev/null
    rm -rf "$dir"
}

ensure_bases() {
    UV=$(command -v uv) || die "uv not on PATH (bash scripts/bootstrap.sh)"
    mkdir -p "$STATE"
    local key t0
    t0=$SECONDS
    key=$(python_key)
    if [ "$(image_label danube-local/python:latest danube.local.key)" != "$key" ]; then
        build_python_base "$key"
    fi
    key=$(uv_key)
    if [ "$(image_label danube-local/uv:latest danube.local.key)" != "$key" ]; then
        build_uv_base "$key"
    fi
    # Service images from Debian packages on the base; BuildKit's cache makes an unchanged one instant.
    local target
    for target in nginx mosquitto prometheus postgres; do
        "$DOCKER" build --progress plain --network host --target "$target" \
            --build-arg BASE=danube-local/python:latest -t "danube-local/$target:latest" \
            -f deploy/docker/local/Dockerfile deploy/docker/local >"$STATE/build-local-$target.log" 2>&1 \
            || { tail -30 "$STATE/build-local-$target.log" >&2; die "building danube-local/$target failed"; }
    done
    log "local bases ready in $((SECONDS - t0)) s"
}

# --- 3. the ten images ------------------------------------------------------------------------------
image_list() {
    # "<name> <dir>" for every image in deploy/docker/images.toml
    python3 - <<'EOF'
import tomllib
for image in tomllib.load(open("deploy/docker/images.toml", "rb"))["image"]:
    print(image["name"], image["dir"])
EOF
}

build_images() {
    local name dir t0 t1 secret=()
    [ -s "$CA_BUNDLE" ] && secret=(--secret "id=ca-bundle,src=$CA_BUNDLE")
    t0=$SECONDS
    while read -r name dir; do
        t1=$SECONDS
        "$DOCKER" build --progress plain --network host "${secret[@]}" \
            --build-arg PYTHON_IMAGE=danube-local/python:latest \
            --build-arg UV_IMAGE=danube-local/uv:latest \
            --build-arg "REVISION=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
            -f "$dir/Dockerfile" -t "$REGISTRY/$name:$TAG" . >"$STATE/build-$name.log" 2>&1 \
            || { tail -40 "$STATE/build-$name.log" >&2; die "building $name ($dir/Dockerfile) failed"; }
        log "built $REGISTRY/$name:$TAG in $((SECONDS - t1)) s"
    done < <(image_list)
    log "all images built in $((SECONDS - t0)) s"
    # A rebuild leaves the previous image of each tag dangling: drop ours (by label), never anyone else's.
    "$DOCKER" image prune -f --filter "label=org.opencontainers.image.vendor=Danube Connect" >/dev/null || true
    "$DOCKER" image prune -f --filter "label=danube.local.key" >/dev/null || true
    printf '%-56s %10s\n' IMAGE SIZE
    while read -r name _; do
        printf '%-56s %10s\n' "$REGISTRY/$name:$TAG" \
            "$("$DOCKER" image inspect --format '{{.Size}}' "$REGISTRY/$name:$TAG" | awk '{printf "%.0f MB", $1/1e6}')"
    done < <(image_list)
}

main() {
    local cmd=${1:-build}
    [ $# -gt 0 ] && shift
    mkdir -p "$STATE" "$RUNDIR" 2>/dev/null || true
    # One run at a time per machine (the daemon, its bridge networks and the compose projects are shared).
    if [ -w "$RUNDIR" ]; then
        exec 9>"$RUNDIR/lock"
        flock -w 3600 9 || die "another scripts/images.sh run holds $RUNDIR/lock"
    fi
    trap stop_daemon EXIT
    trap 'exit 130' INT TERM
    ensure_daemon
    case "$cmd" in
        bases) ensure_bases ;;
        build) ensure_bases; build_images ;;
        test)
            ensure_bases
            build_images
            export DANUBE_CONTAINER_TIER=1 DANUBE_CONNECT_REGISTRY=$REGISTRY DANUBE_CONNECT_TAG=$TAG
            local rc=0
            uv run pytest tests/containers -p no:cacheprovider "$@" || rc=$?
            if [ "$rc" -eq 5 ]; then die "pytest collected no container tests"; fi
            return "$rc"
            ;;
        *) die "unknown command: $cmd (build | test | bases)" ;;
    esac
}

main "$@"
