# Functions shared by the scripts that start hourtally and wait for it (sourced, not run; no
# side effects): bench-durability.sh, bench-cluster.sh, soak.sh.

# wait_ready LOG [TRIES]: waits until the hourtally whose output goes to LOG has logged
# `ready` (a try every 0.05 s, 6000 tries by default: recovery of a large journal takes
# minutes), then sets ADDR from its `listening ... addr=` line. Exits with the log if it never
# gets there.
wait_ready() {
    local log=$1 tries=${2:-6000}
    for _ in $(seq "$tries"); do
        if grep -q ' ready' "$log"; then
            ADDR=$(grep -o 'addr=[^ ]*' "$log" | head -1 | cut -d= -f2)
            return 0
        fi
        sleep 0.05
    done
    echo "server did not start:" >&2
    cat "$log" >&2
    exit 1
}

# median: the median of the numbers on standard input, one per line (the upper one of two).
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
