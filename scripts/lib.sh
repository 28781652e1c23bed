# Shared by the bench scripts (sourced, not run): a temp directory, the one server a script
# runs at a time, and their cleanup on exit or interrupt. Sets TMP, SERVER_PID="".
TMP=$(mktemp -d)
SERVER_PID=""

# stop_server: SIGTERM to the running server (if any), and wait for it.
stop_server() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}

cleanup() {
    stop_server
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server LOG COMMAND...: runs the server COMMAND in the background (SERVER_PID), its
# output to LOG, and waits until it says where it listens: sets ADDR (host:port).
start_server() {
    local log=$1
    shift
    # Made here, not only by the child's redirection: the wait below may read it first.
    : >"$log"
    "$@" >"$log" 2>&1 &
    SERVER_PID=$!
    ADDR=""
    for _ in $(seq 200); do
        ADDR=$(awk '/ listening / { for (i = 1; i <= NF; i++) if ($i ~ /^addr=/) { print substr($i, 6); exit } }' "$log")
        [[ -n $ADDR ]] && return 0
        sleep 0.05
    done
    cat "$log" >&2
    exit 1
}

# cpu_ticks PID: utime + stime of the process, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# metric NAME: its value on the server's /metrics (empty if absent or not ready).
metric() { curl -fsS "http://$ADDR/metrics" 2>/dev/null | awk -v n="$1" '$1 == n { print $2 }'; }

# wait_for NAME VALUE: until /metrics shows NAME >= VALUE (at most 5 minutes).
wait_for() {
    for _ in $(seq 3000); do
        local v
        v=$(metric "$1")
        [[ -n $v && $v -ge $2 ]] && return 0
        sleep 0.1
    done
    echo "$1 never reached $2" >&2
    exit 1
}

# wait_ready: until /readyz answers 200 (the replay is over; at most 5 minutes).
wait_ready() {
    for _ in $(seq 3000); do
        curl -fs -o /dev/null "http://$ADDR/readyz" && return 0
        sleep 0.1
    done
    echo "the server at $ADDR was not ready within 5 minutes" >&2
    exit 1
}
