# Shared helpers of scripts/test and scripts/bench (sourced, not run).

VENV="${VENV:-$root/.venv}"
FIRESTORE_EMULATOR="${FIRESTORE_EMULATOR:-/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud_firestore_emulator}"

# The Python tools (moto's DynamoDB server, SAM CLI, cfn-lint, schemathesis), in a project venv.
ensure_python_tools() {
  if [[ ! -x $VENV/bin/moto_server || ! -x $VENV/bin/sam || ! -x $VENV/bin/cfn-lint || ! -x $VENV/bin/schemathesis ]]; then
    echo "== installing moto[server], aws-sam-cli, cfn-lint, schemathesis into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check 'moto[server]>=5,<6' aws-sam-cli cfn-lint 'schemathesis>=4.32,<5'
  fi
}

ensure_firestore_emulator() {
  if [[ ! -x $FIRESTORE_EMULATOR ]]; then
    echo "The Firestore emulator was not found at $FIRESTORE_EMULATOR." >&2
    echo "Install it with the Google Cloud CLI (gcloud components install cloud-firestore-emulator," >&2
    echo "or apt-get install google-cloud-cli-firestore-emulator) and set FIRESTORE_EMULATOR to its path." >&2
    exit 1
  fi
  if ! command -v java >/dev/null; then
    echo "The Firestore emulator needs Java 11+: apt-get install openjdk-17-jre-headless" >&2
    exit 1
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# start_group STATE_PREFIX CMD...: runs CMD in its own process group, logging to PREFIX.log.
start_group() {
  local prefix=$1; shift
  setsid "$@" >"$prefix.log" 2>&1 < /dev/null &
  echo $! >"$prefix.pid"
}

# wait_http URL NAME LOG: polls URL until it answers 200, for up to 60 s.
wait_http() {
  local url=$1 name=$2 log=$3
  for _ in $(seq 1 300); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "$name did not come up at $url; its log:" >&2
  cat "$log" >&2
  exit 1
}

# Node.js 20+ and npm, for the client package and the browser test. Checked up front so a machine
# without them fails at once, not after the Rust suites.
ensure_node() {
  local major tool
  for tool in node npm; do
    if ! command -v "$tool" >/dev/null; then
      echo "The client and browser tests need Node.js 20 or newer with npm, and '$tool' is not on PATH." >&2
      echo "Install them (e.g. the nodejs package from Debian or NodeSource) and run scripts/test again." >&2
      exit 1
    fi
  done
  major=$(node -p 'process.versions.node.split(".")[0]')
  if (( major < 20 )); then
    echo "The client and browser tests need Node.js 20 or newer; this node is $(node --version)." >&2
    exit 1
  fi
}

# The directory cargo builds into (CARGO_TARGET_DIR, a config's target-dir, or ./target).
cargo_target_dir() {
  cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}

# DIR/node_modules as DIR/package-lock.json says: npm ci when it is missing or was installed
# from another lock file. Never downloads a browser (the browser test drives Debian's chromium
# through playwright-core, which has no install step) and runs no install script (the lock's
# packages need none; one of them would only send install analytics).
ensure_npm_packages() {
  local dir=$root/$1 stamp=$root/$1/node_modules/.installed-package-lock.json
  if [[ ! -f $stamp ]] || ! cmp -s "$dir/package-lock.json" "$stamp"; then
    echo "== npm ci --prefix $1"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$dir" --no-audit --no-fund --ignore-scripts
    cp "$dir/package-lock.json" "$stamp"
  fi
}

ensure_browser_test_packages() {
  ensure_npm_packages browser-tests
}

# client/node_modules: the client package's dev dependencies (typescript, @reduxjs/toolkit, ws).
ensure_client_packages() {
  ensure_npm_packages client
}
