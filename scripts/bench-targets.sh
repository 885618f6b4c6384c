# The targets of scripts/bench, sourced by it (not a command): the upstreams, Airlock
# as deployed (control plane + bundle + proxy), Airlock without an audit sink, and
# nginx unpacked from Debian's package. Uses scripts/bench's helpers and variables
# (WORK, ROOT, AIRLOCK, PIDS, say, die, await_line, await_ready, assert_loopback_only).
# shellcheck shell=bash

# A loopback port nothing listens on (nginx needs one in its config).
free_port() {
  local port tries=0
  while ((tries++ < 50)); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  die "no free loopback port found"
}

# --- nginx, unpacked from Debian's package ----------------------------------------

# Libraries nginx needs that are not installed here: their packages are unpacked
# beside it and found through LD_LIBRARY_PATH.
nginx_libs() {
  echo "$NGINX_ROOT/lib/x86_64-linux-gnu:$NGINX_ROOT/usr/lib/x86_64-linux-gnu"
}

ensure_nginx() {
  local stamp="$NGINX_ROOT/.airlock-stamp" dl="$WORK/debs" deb pkg missing
  if [[ -x "$NGINX" && -f "$stamp" ]]; then
    return
  fi
  command -v apt-get >/dev/null 2>&1 && command -v dpkg >/dev/null 2>&1 ||
    die "nginx is not in .tools/nginx and apt-get/dpkg are missing: on Debian or Ubuntu, scripts/bench unpacks Debian's nginx; elsewhere run with --targets without nginx"
  say "unpacking Debian's nginx into .tools/nginx (apt-get download + dpkg -x; nothing is installed)"
  mkdir -p "$dl"
  if ! (cd "$dl" && timeout 300 apt-get download nginx >/dev/null 2>&1); then
    say "apt-get download nginx failed: refreshing the package lists (apt-get update) and retrying"
    timeout 300 apt-get update -qq >/dev/null 2>&1 || true
    (cd "$dl" && timeout 300 apt-get download nginx >/dev/null 2>&1) ||
      die "apt-get download nginx failed: check the network and the apt sources, then rerun (or leave nginx out: --targets \"direct airlock airlock-deployed\")"
  fi
  rm -rf "$NGINX_ROOT" && mkdir -p "$NGINX_ROOT"
  deb="$(ls "$dl"/nginx_*.deb)"
  dpkg -x "$deb" "$NGINX_ROOT"
  # Shared libraries only; nginx-common (config files, service) and iproute2 are not needed.
  for pkg in $(apt-cache depends --no-recommends --no-suggests nginx 2>/dev/null | awk '/Depends: lib|Depends: zlib/ {print $2}'); do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      say "  $pkg is not installed: unpacking it beside nginx"
      (cd "$dl" && timeout 300 apt-get download "$pkg" >/dev/null 2>&1) || die "apt-get download $pkg failed"
      dpkg -x "$(ls "$dl"/"$pkg"_*.deb)" "$NGINX_ROOT"
    fi
  done
  missing="$(LD_LIBRARY_PATH="$(nginx_libs)" ldd "$NGINX" | awk '/not found/ {print $1}' | tr '\n' ' ')"
  [[ -z "$missing" ]] || die "nginx still misses libraries: $missing"
  dpkg-deb -f "$deb" Package Version | tr '\n' ' ' >"$stamp"
}

# nginx in front of both upstreams: HTTP/1.1 keep-alive on both sides, no buffering
# of answers (SSE), no access log: the least a reverse proxy does.
start_nginx() {
  local dir="$WORK/nginx" log="$WORK/nginx.log" port user="" attempt
  mkdir -p "$dir/tmp"
  [[ "$(id -u)" != 0 ]] || user="user nobody nogroup;"
  for attempt in 1 2 3 4 5; do
    port="$(free_port)"
    cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes $(nproc);
$user
pid $dir/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  keepalive_requests 1000000;
  upstream everything { server $EVERYTHING_HOSTPORT; keepalive 64; keepalive_requests 1000000; }
  upstream demo { server $DEMO_HOSTPORT; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$port;
    proxy_http_version 1.1;
    proxy_buffering off;
    # proxy_set_header is inherited only by a level that sets none: each location
    # repeats the empty Connection, which keeps upstream connections alive.
    location = /mcp/everything {
      proxy_set_header Connection "";
      proxy_set_header Host $EVERYTHING_HOSTPORT;
      proxy_pass http://everything/mcp;
    }
    location = /mcp/demo {
      proxy_set_header Connection "";
      proxy_set_header Host $DEMO_HOSTPORT;
      proxy_set_header Authorization "Bearer $DEMO_TOKEN";
      proxy_pass http://demo/mcp;
    }
  }
}
EOF
    LD_LIBRARY_PATH="$(nginx_libs)" "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e stderr >"$log" 2>&1 &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    local deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)) && kill -0 "$NGINX_PID" 2>/dev/null; do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        NGINX_URL="http://127.0.0.1:$port"
        # CPU time is counted over the master and its workers.
        local workers=""
        while ((SECONDS < deadline)); do
          workers="$(pgrep -P "$NGINX_PID" | paste -sd, - || true)"
          [[ "$(tr ',' '\n' <<<"$workers" | grep -c .)" -lt "$(nproc)" ]] || break
          sleep 0.05
        done
        [[ -n "$workers" ]] || die "nginx started no worker process"
        NGINX_WORKERS="$workers"
        refresh_nginx_pids
        assert_loopback_only "$NGINX_PID" "nginx"
        return
      fi
      sleep 0.1
    done
    grep -q "Address already in use" "$log" || { cat "$log" >&2; die "nginx did not start"; }
  done
  die "nginx found no free port in 5 attempts"
}

# Sets NGINX_PIDS to nginx's master and its current workers (the master replaces a
# worker that dies: its log says why, and the next run counts the new one).
refresh_nginx_pids() {
  local workers
  kill -0 "$NGINX_PID" 2>/dev/null || { tail -n 20 "$WORK/nginx.log" >&2; die "nginx exited"; }
  workers="$(pgrep -P "$NGINX_PID" | paste -sd, - || true)"
  if [[ "$workers" != "$NGINX_WORKERS" ]]; then
    say "nginx's workers changed ($NGINX_WORKERS -> $workers); its log ends with:"
    tail -n 5 "$WORK/nginx.log" >&2
    NGINX_WORKERS="$workers"
  fi
  NGINX_PIDS="$NGINX_PID${workers:+,$workers}"
}

# --- upstreams, control plane, proxies -----------------------------------------------

start_upstreams() {
  local log="$WORK/everything.log"
  # Its `app.listen(PORT)` binds every interface: the preload pins it to 127.0.0.1.
  (cd "$CONFORMANCE_DIR" && exec env PORT=0 "$NODE" -r "$LOOPBACK_PRELOAD" "$EVERYTHING" streamableHttp) >"$log" 2>&1 &
  EVERYTHING_PID=$!
  PIDS+=("$EVERYTHING_PID")
  EVERYTHING_HOSTPORT="127.0.0.1:$(await_line "$log" '^loopback-preload listening on 127\.0\.0\.1:([0-9]+)$' "$EVERYTHING_PID" "server-everything")"
  EVERYTHING_URL="http://$EVERYTHING_HOSTPORT/mcp"
  assert_loopback_only "$EVERYTHING_PID" "server-everything"

  log="$WORK/demo.log"
  DEMO_TOKEN="upstream_$(random_hex)"
  AIRLOCK_DEMO_TOKEN="$DEMO_TOKEN" "$AIRLOCK" demo-server --listen 127.0.0.1:0 >"$log" 2>&1 &
  DEMO_PID=$!
  PIDS+=("$DEMO_PID")
  DEMO_URL="$(await_line "$log" '^airlock demo-server listening on (http://127\.0\.0\.1:[0-9]+/mcp)$' "$DEMO_PID" "demo server")"
  DEMO_HOSTPORT="$(sed -E 's#^http://([^/]+)/mcp$#\1#' <<<"$DEMO_URL")"
  assert_loopback_only "$DEMO_PID" "demo server"
}

start_control_plane() {
  local log="$WORK/control-plane.log" operator
  mkdir -p "$WORK/keys"
  "$AIRLOCK" bundle keygen -o "$WORK/keys/bench" >/dev/null
  operator="cp_operator_$(random_hex)"
  NODE_TOKEN="cp_node_$(random_hex)"
  # airlock dev's control plane: an operator (admin + reviewer of dba and security),
  # a node token, the reviewer page on a free port.
  cat >"$WORK/control-plane.toml" <<EOF
listen = "127.0.0.1:0"
data_dir = "$WORK/control-plane"
trusted_keys = ["$WORK/keys/bench.pub"]

[[tokens]]
subject = "bench-operator"
sha256 = "$(sha256_hex "$operator")"
roles = ["admin", "reviewer"]
groups = ["dba", "security"]

[[tokens]]
subject = "bench-proxy"
sha256 = "$(sha256_hex "$NODE_TOKEN")"
roles = ["node"]

[ui]
listen = "127.0.0.1:0"
EOF
  "$AIRLOCK" control-plane --config "$WORK/control-plane.toml" >"$log" 2>&1 &
  CONTROL_PLANE_PID=$!
  PIDS+=("$CONTROL_PLANE_PID")
  CONTROL_PLANE_URL="$(await_line "$log" '^airlock control-plane listening on (http://127\.0\.0\.1:[0-9]+)$' "$CONTROL_PLANE_PID" "the control plane")"
  assert_loopback_only "$CONTROL_PLANE_PID" "the control plane"
  "$AIRLOCK" bundle push "$ROOT/policies" --signing-key "$WORK/keys/bench.key" \
    --control-plane "$CONTROL_PLANE_URL" --token "$operator" >"$WORK/bundle-push.log" 2>&1 ||
    { cat "$WORK/bundle-push.log" >&2; die "publishing policies/ to the control plane failed"; }
}

# airlock dev's proxy config (src/cli/dev.rs), with server-everything added off prod
# (an unknown tool on prod is held for approval by the default policies).
proxy_config() {
  local policy_source="$1"
  cat <<EOF
[server]
listen = "127.0.0.1:0"
allowed_origins = ["http://localhost:6274", "http://127.0.0.1:6274"]

$policy_source

[[api_keys]]
subject = "demo-agent"
sha256 = "$(sha256_hex "$AGENT_KEY")"
groups = ["agents"]
kind = "agent"

[[api_keys]]
subject = "readonly-agent"
sha256 = "$(sha256_hex "readonly_$(random_hex)")"
groups = ["readonly"]
kind = "agent"

[[upstreams]]
name = "demo"
url = "$DEMO_URL"
labels = { env = "prod" }
headers = { Authorization = "Bearer $DEMO_TOKEN" }

[[upstreams]]
name = "everything"
url = "$EVERYTHING_URL"
labels = { env = "dev" }
EOF
}

# Starts `airlock proxy` with config NAME.toml; sets PROXY_URL and PROXY_PID.
start_proxy() {
  local name="$1" log="$WORK/$1.log"
  "$AIRLOCK" proxy --config "$WORK/$name.toml" >"$log" 2>&1 &
  PROXY_PID=$!
  PIDS+=("$PROXY_PID")
  PROXY_URL="$(await_line "$log" '.*airlock proxy listening on (http://127\.0\.0\.1:[0-9]+).*' "$PROXY_PID" "airlock proxy ($name)")"
  assert_loopback_only "$PROXY_PID" "airlock proxy ($name)"
  await_ready "$PROXY_URL/readyz" "$PROXY_PID" "airlock proxy ($name)" "$log"
}

start_targets() {
  AGENT_KEY="ak_demo_$(random_hex)"
  if [[ " $TARGETS " == *" airlock-deployed "* ]]; then
    start_control_plane
    proxy_config "[control_plane]
url = \"$CONTROL_PLANE_URL\"
token = \"$NODE_TOKEN\"
node_id = \"bench-proxy\"
bundle_public_keys = [\"$WORK/keys/bench.pub\"]
heartbeat_s = 5" >"$WORK/airlock-deployed.toml"
    start_proxy airlock-deployed
    DEPLOYED_URL="$PROXY_URL" DEPLOYED_PID="$PROXY_PID"
  fi
  if [[ " $TARGETS " == *" airlock "* ]]; then
    proxy_config "[policy]
dir = \"$ROOT/policies\"" >"$WORK/airlock.toml"
    start_proxy airlock
    LOCAL_URL="$PROXY_URL" LOCAL_PID="$PROXY_PID"
  fi
  if [[ " $TARGETS " == *" nginx "* ]]; then
    ensure_nginx
    start_nginx
  fi
}
