#!/usr/bin/env bash
# imagebump demo: a real local registry, a real local config repo, the daemon reacting to a push.
#
#   1. starts Debian's docker-registry (the CNCF distribution server) on 127.0.0.1,
#      with a notification endpoint pointing at imagebump's `distribution` webhook;
#   2. pushes tags 1.0.0 and 1.1.0 of a tiny image it builds itself (no pulls from the internet);
#   3. creates a config repo (a bare git repo) with a Kustomize overlay and Helm values files;
#   4. runs `imagebump run` (poll interval: 1 hour, so only the webhook can explain what follows);
#   5. pushes 1.2.0 and shows the commit the daemon made in reaction (`git log -p -1`).
# Everything it starts is stopped on exit, Ctrl-C included.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/imagebump-demo.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

missing=()
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v curl >/dev/null || missing+=(curl)
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]} (Debian packages)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The package's own service (if any) is not used: the demo starts its own registry.

say "building imagebump"
(cd "$ROOT" && cargo build --quiet --bin imagebump)
IMAGEBUMP="${CARGO_TARGET_DIR:-$ROOT/target}/debug/imagebump"

# A free loopback port: a random one nobody answers on.
free_port() {
  local port
  while :; do
    port=$(( 20000 + RANDOM % 40000 ))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
  done
}
REG_PORT=$(free_port)
HOOK_PORT=$(free_port)
REGISTRY="127.0.0.1:$REG_PORT"
TOKEN="demo-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"

say "starting docker-registry on $REGISTRY"
mkdir -p "$WORK/registry"
cat > "$WORK/registry.yml" <<YAML
version: 0.1
log: {level: error}
storage:
  filesystem: {rootdirectory: $WORK/registry}
  delete: {enabled: true}
http:
  addr: $REGISTRY
notifications:
  endpoints:
    - name: imagebump
      url: http://127.0.0.1:$HOOK_PORT/webhook/distribution
      headers:
        Authorization: [$TOKEN]
      timeout: 2s
      threshold: 5
      backoff: 1s
YAML
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do curl -fsS "http://$REGISTRY/v2/" >/dev/null 2>&1 && break; sleep 0.1; done

# Push one tag of a tiny single-layer image through the registry API.
upload_blob() { # repo file digest
  local loc
  loc=$(curl -fsSi -X POST "http://$REGISTRY/v2/$1/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
  case "$loc" in http*) ;; *) loc="http://$REGISTRY$loc" ;; esac
  case "$loc" in *\?*) loc="$loc&digest=$3" ;; *) loc="$loc?digest=$3" ;; esac
  curl -fsS -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$2" "$loc" >/dev/null
}
push_tag() { # repo tag
  local repo=$1 tag=$2 d="$WORK/img-$2"
  mkdir -p "$d/root"
  echo "imagebump demo $tag" > "$d/root/hello.txt"
  tar -C "$d/root" --mtime=@0 --owner=0 --group=0 -cf "$d/layer.tar" hello.txt
  gzip -n -c "$d/layer.tar" > "$d/layer.tar.gz"
  local diff_id layer_digest layer_size config_digest config_size
  diff_id="sha256:$(sha256sum "$d/layer.tar" | cut -d' ' -f1)"
  layer_digest="sha256:$(sha256sum "$d/layer.tar.gz" | cut -d' ' -f1)"
  layer_size=$(stat -c %s "$d/layer.tar.gz")
  printf '{"architecture":"amd64","os":"linux","created":"%s","config":{},"rootfs":{"type":"layers","diff_ids":["%s"]}}' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$diff_id" > "$d/config.json"
  config_digest="sha256:$(sha256sum "$d/config.json" | cut -d' ' -f1)"
  config_size=$(stat -c %s "$d/config.json")
  upload_blob "$repo" "$d/layer.tar.gz" "$layer_digest"
  upload_blob "$repo" "$d/config.json" "$config_digest"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%s}]}' \
    "$config_digest" "$config_size" "$layer_digest" "$layer_size" > "$d/manifest.json"
  curl -fsS -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "@$d/manifest.json" "http://$REGISTRY/v2/$repo/manifests/$tag" >/dev/null
  echo "pushed $REGISTRY/$repo:$tag"
}

say "pushing demo/shop-api 1.0.0 and 1.1.0"
push_tag demo/shop-api 1.0.0
push_tag demo/shop-api 1.1.0

say "creating the config repo (Kustomize overlay + Helm values for dev, staging, prod)"
git init -q --bare -b main "$WORK/shop-config.git"
git clone -q "$WORK/shop-config.git" "$WORK/seed" 2>/dev/null
mkdir -p "$WORK/seed/overlays/dev" "$WORK/seed/charts/shop"
cat > "$WORK/seed/overlays/dev/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization

# The dev overlay follows every 1.x release.
resources:
  - ../../base

images:
  - name: $REGISTRY/demo/shop-api
    newTag: 1.0.0   # written by imagebump
YAML
for env in dev staging prod; do
  cat > "$WORK/seed/charts/shop/values-$env.yaml" <<YAML
# shop values for $env

replicaCount: 2

api:
  image:
    repository: $REGISTRY/demo/shop-api
    tag: "1.0.0"

    pullPolicy: IfNotPresent
YAML
done
git -C "$WORK/seed" add -A
git -C "$WORK/seed" -c user.name=demo -c user.email=demo@example.com commit -qm "initial config"
git -C "$WORK/seed" push -q origin main

mkdir -p "$WORK/imagebump/apps"
cat > "$WORK/imagebump/imagebump.yaml" <<YAML
apps: apps/
interval: 1h                 # the webhook, not the poll, makes the second commit
workdir: $WORK/cache
git:
  author: {name: imagebump, email: imagebump@example.com}
registries:
  - prefix: $REGISTRY
    insecure: true
webhook:
  listen: 127.0.0.1:$HOOK_PORT
  receivers:
    - type: distribution
      secret_env: REGISTRY_WEBHOOK_TOKEN
YAML
cat > "$WORK/imagebump/apps/shop.yaml" <<YAML
name: shop
repo: file://$WORK/shop-config.git
branch: main
images:
  - name: api
    image: $REGISTRY/demo/shop-api
    policy: {semver: "^1.0"}
    targets:
      - file: overlays/dev/kustomization.yaml
      - file: charts/shop/values-dev.yaml
        path: api.image.tag
      - file: charts/shop/values-staging.yaml
        path: api.image.tag
YAML
"$IMAGEBUMP" validate --config "$WORK/imagebump/imagebump.yaml"

say "starting the daemon (first cycle: 1.0.0 -> 1.1.0)"
REGISTRY_WEBHOOK_TOKEN=$TOKEN "$IMAGEBUMP" run --config "$WORK/imagebump/imagebump.yaml" \
  --log-level info >"$WORK/daemon.log" 2>&1 &
PIDS+=($!)
head_of() { git --git-dir="$WORK/shop-config.git" rev-parse main; }
wait_for_commit() { # old-head seconds
  for _ in $(seq $(( $2 * 10 ))); do
    [ "$(head_of)" != "$1" ] && return 0
    sleep 0.1
  done
  echo "no commit within $2 s; daemon log:" >&2; cat "$WORK/daemon.log" >&2; return 1
}
START=$(head_of)
wait_for_commit "$START" 30
git --git-dir="$WORK/shop-config.git" log --format='%h %an: %s' -1

# The registry queued notifications for 1.0.0 and 1.1.0 while the daemon was not listening
# yet; let them be delivered (and acted on: nothing new) before the push that is timed.
sleep 2
say "pushing 1.2.0: the registry notifies the daemon"
BEFORE=$(head_of)
T0=$(date +%s%N)
push_tag demo/shop-api 1.2.0
wait_for_commit "$BEFORE" 20
T1=$(date +%s%N)
say "commit made $(( (T1 - T0) / 1000000 )) ms after the push:"
git --git-dir="$WORK/shop-config.git" --no-pager log -p -1 --stat
if [ -n "${DEMO_LOG:-}" ]; then cp "$WORK/daemon.log" "$DEMO_LOG"; fi
say "done: the config repo now deploys 1.2.0 (stopping the registry and the daemon)"
