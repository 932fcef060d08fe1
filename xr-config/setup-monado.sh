#!/usr/bin/env bash
# Sets up a headless Monado 25 OpenXR runtime (Debian trixie packages, unpacked, nothing installed on
# the host) as ../shared/notes/headless-xr.md describes, and prints the environment to use it.
#
# Usage: xr-config/setup-monado.sh            prints KEY=VALUE lines (stdout); progress goes to stderr
#        eval "$(xr-config/setup-monado.sh --export)"   the same as `export` lines for a shell
# Cache: $NETWALK_XR_CACHE (default /var/tmp/netwalk-monado); a second run only prints the environment.
#
# Starting the runtime headless (null compositor, simulated HMD + two khr/simple_controller):
#   XRT_COMPOSITOR_NULL=1 SIMULATED_ENABLE=1 SIMULATED_LEFT=simple SIMULATED_RIGHT=simple \
#   XRT_NO_STDIN=1 IPC_EXIT_ON_DISCONNECT=1 XDG_RUNTIME_DIR=<private dir> \
#   "$NETWALK_XR_LDSO" --library-path "$NETWALK_XR_LIBRARY_PATH" "$NETWALK_XR_MONADO_SERVICE"
# and wait for "The Monado service has started" in its output. Apps run through the same loader:
#   "$NETWALK_XR_LDSO" --library-path "$NETWALK_XR_LIBRARY_PATH" target/debug/netwalk run --xr
set -euo pipefail
mode=plain
[ "${1:-}" = --export ] && mode=export

D="${NETWALK_XR_CACHE:-/var/tmp/netwalk-monado}"
X="$D/root"
stamp="$D/.complete-v1"
log() { echo "setup-monado: $*" >&2; }

if [ ! -e "$stamp" ]; then
  if [ "$(id -u)" != 0 ]; then
    log "needs root once (apt-get with a private state dir) to fill $D"
    exit 1
  fi
  src=/etc/apt/sources.list.d/debian.sources
  if [ ! -r "$src" ]; then
    log "no $src (a Debian 12 deb822 source list) to derive the trixie source from"
    exit 1
  fi
  log "fetching Monado 25 from Debian trixie into $D (once, ~170 MB)"
  rm -rf "$D"
  mkdir -p "$D/sp" "$D/lists/partial" "$D/cache/archives/partial" "$X"
  touch "$D/empty-status"
  awk 'BEGIN{RS="";ORS="\n\n"} /Suites: bookworm/ && !/security/' "$src" \
    | sed 's/^Suites:.*/Suites: trixie/' >"$D/sp/trixie.sources"
  O=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$D/sp" -o "Dir::State::Lists=$D/lists"
     -o "Dir::Cache=$D/cache" -o "Dir::State::status=$D/empty-status"
     -o APT::Architecture=amd64 -o APT::Architectures=amd64)
  apt-get "${O[@]}" update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get "${O[@]}" install -y -qq -d --no-install-recommends \
    monado-service libopenxr1-monado libopenxr-loader1 mesa-vulkan-drivers libvulkan1 \
    openxr-layer-corevalidation >&2
  for f in "$D"/cache/archives/*.deb; do dpkg -x "$f" "$X"; done
  rm -f "$D"/cache/archives/*.deb
  # The core validation layer's manifest names an absolute /usr/lib path: point a copy at the unpacked .so.
  mkdir -p "$D/api_layers"
  for m in "$X"/usr/share/openxr/1/api_layers/explicit.d/XrApiLayer_core_validation*.json; do
    so=$(sed -n 's/.*"library_path"[^"]*"\([^"]*\)".*/\1/p' "$m")
    sed "s#\"library_path\"[^,]*#\"library_path\": \"$X$so\"#" "$m" >"$D/api_layers/$(basename "$m")"
  done
  touch "$stamp"
  log "done"
fi

LP="$X/usr/lib/x86_64-linux-gnu:$X/usr/lib/x86_64-linux-gnu/lapack:$X/usr/lib/x86_64-linux-gnu/blas:$X/usr/lib/x86_64-linux-gnu/pulseaudio:$X/usr/lib"
emit() { if [ $mode = export ]; then printf 'export %s=%q\n' "$1" "$2"; else printf '%s=%s\n' "$1" "$2"; fi; }
emit NETWALK_XR_ROOT "$X"
emit NETWALK_XR_LDSO "$X/usr/lib64/ld-linux-x86-64.so.2"
emit NETWALK_XR_LIBRARY_PATH "$LP"
emit NETWALK_XR_MONADO_SERVICE "$X/usr/bin/monado-service"
emit XR_RUNTIME_JSON "$X/usr/share/openxr/1/openxr_monado.json"
emit XR_API_LAYER_PATH "$D/api_layers"
# The unpacked tree's data (Vulkan ICDs, OpenXR manifests) first, then the host's (validation layer).
emit XDG_DATA_DIRS "$X/usr/share:/usr/local/share:/usr/share"
emit XDG_CONFIG_DIRS "$X/etc/xdg:/etc/xdg"
