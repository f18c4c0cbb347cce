# shellcheck shell=bash
# scripts/bench/lib.sh: what the benchmarks share. Sourced, not run.
#
# Needs a running lab (scripts/testvm start) and release binaries
# (cargo build --release). Provides:
#   lab CMD...          run CMD in the guest (root, through the lab's ssh config)
#   bench_setup TOOL... install zab tools in the guest and a zfs-counting
#                       wrapper ahead of the real zfs in root's PATH: it logs
#                       one line per call to /run/zab-bench-zfs-calls and
#                       execs /usr/sbin/zfs; and export the lab's other pools
#                       (what the last test run left there would otherwise
#                       weigh on every tool that reads all datasets, as
#                       zab-select and zfs-autobackup do). bench_cleanup
#                       removes the wrapper and imports the pools again
#   make_pool N         a fresh file-backed pool `bench` (mounted) with N
#                       datasets under bench/data, marked autobackup:bench=true
#   make_tree T P N     N more datasets under T (in that pool), T marked P=true
#   run_guest KEY CMD   time CMD in the guest (no ssh in the measurement) and
#                       append "KEY ms zfs-calls" to $samples; fails (and so
#                       ends the script) when CMD fails
#   summary KEY         "median-ms calls" of KEY's samples
#   ratio A B           A / B with two decimals
cfg=$(scripts/testvm config)
lab() { ssh -F "$cfg" zfs-lab "$@"; }
samples=$(mktemp)

bench_setup() {
    local t
    for t in "$@"; do
        [[ -x target/release/$t ]] || { echo "build first: cargo build --release" >&2; exit 1; }
        scripts/testvm install "target/release/$t" >/dev/null
    done
    lab sh -s <<'EOF2'
set -e
real=$(command -v zfs)
[ "$real" = /usr/sbin/zfs ] || [ "$real" = /sbin/zfs ] || { echo "zfs is $real" >&2; exit 1; }
cat > /usr/local/sbin/zfs <<'W'
#!/bin/sh
echo "$*" >> /run/zab-bench-zfs-calls
exec /usr/sbin/zfs "$@"
W
chmod 755 /usr/local/sbin/zfs
for p in $(zpool list -H -o name); do
  [ "$p" = bench ] && continue
  if zpool export "$p"; then echo "$p" >> /run/zab-bench-exported; else echo "bench: pool $p stays imported" >&2; fi
done
EOF2
    trap bench_cleanup EXIT
}

bench_cleanup() {
    rm -f "$samples"
    # shellcheck disable=SC2016 # expanded in the guest
    lab 'rm -f /usr/local/sbin/zfs /run/zab-bench-zfs-calls; zpool destroy bench 2>/dev/null; rm -f /var/tmp/bench.img
        if [ -f /run/zab-bench-exported ]; then
          while read -r p; do zpool import "$p" || echo "bench: zpool import $p failed" >&2; done < /run/zab-bench-exported
          rm -f /run/zab-bench-exported
        fi' || true
}

make_pool() {
    echo "making $1 datasets..." >&2
    lab sh -s <<'EOF2'
set -e
zpool destroy bench 2>/dev/null || true
rm -f /var/tmp/bench.img; truncate -s 4G /var/tmp/bench.img
# Mounted, as source datasets are: under TCG an unmounted dataset costs
# about 60 ms to list, a mounted one about 5 ms (docs/benchmarks.md).
zpool create -O mountpoint=/bench bench /var/tmp/bench.img
EOF2
    make_tree bench/data autobackup:bench "$1"
}

# make_tree TREE PROPERTY N: N datasets under TREE (made, marked PROPERTY=true)
# in ten groups of N/10, so that the tree has some depth.
make_tree() {
    lab sh -s "$1" "$2" "$3" <<'EOF2'
set -e
t=$1 n=$3
zfs create -o "$2=true" "$t"
g=$(( n / 10 )); [ "$g" -gt 0 ] || g=1
made=0; i=0
while [ "$made" -lt "$n" ]; do
  i=$((i + 1)); zfs create "$t/g$i"; made=$((made + 1))
  j=1
  while [ "$j" -lt "$g" ] && [ "$made" -lt "$n" ]; do
    echo "$t/g$i/d$j"; j=$((j + 1)); made=$((made + 1))
  done
done | xargs -P 4 -n 50 sh -c 'for d; do zfs create "$d"; done' sh
echo "$t: $(zfs list -H -o name -r "$t" | wc -l) datasets made" >&2
EOF2
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

run_guest() {
    lab "rm -f /run/zab-bench-zfs-calls; s=\$(date +%s%3N); $2 >/dev/null || { echo \"bench: $1 failed (exit \$?)\" >&2; exit 1; }; e=\$(date +%s%3N); echo $1 \$((e - s)) \$(wc -l < /run/zab-bench-zfs-calls)" >>"$samples"
}

summary() {
    printf '%s %s\n' "$(awk -v k="$1" '$1 == k {print $2}' "$samples" | median)" \
        "$(awk -v k="$1" '$1 == k {print $3}' "$samples" | sort -u | paste -sd/)"
}
