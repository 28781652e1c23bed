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
