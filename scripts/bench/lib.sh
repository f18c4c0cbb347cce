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
#   trace_on            timing wrappers in the guest instead of the counting
#                       one: ahead of zfs ("start-ms end-ms parent argv" per
#                       call, the parent being the zab tool that ran it) and
#                       around each zab tool ("start-ms end-ms tool" per run)
#   trace_runs OPTS R   R traced runs of `zab-autobackup --exclude-received
#                       OPTS bench bench/tw`, each stage's and each call's
#                       time into $traced; fails when a run fails
#   trace_table         $traced as a Markdown table: each stage (medians),
#                       with its zfs calls (those of the last run)
#   trace_off           the timing wrappers removed, the counting one back
cfg=$(scripts/testvm config)
lab() { ssh -F "$cfg" zfs-lab "$@"; }
samples=$(mktemp)
traced=$(mktemp)

bench_setup() {
    local t
    for t in "$@"; do
        [[ -x target/release/$t ]] || { echo "build first: cargo build --release" >&2; exit 1; }
        scripts/testvm install "target/release/$t" >/dev/null
    done
    count_wrapper
    lab sh -s <<'EOF2'
set -e
for p in $(zpool list -H -o name); do
  [ "$p" = bench ] && continue
  if zpool export "$p"; then echo "$p" >> /run/zab-bench-exported; else echo "bench: pool $p stays imported" >&2; fi
done
EOF2
    trap bench_cleanup EXIT
}

# count_wrapper: the zfs-counting wrapper ahead of the real zfs.
count_wrapper() {
    lab sh -s <<'EOF2'
set -e
rm -f /usr/local/sbin/zfs
real=$(command -v zfs)
[ "$real" = /usr/sbin/zfs ] || [ "$real" = /sbin/zfs ] || { echo "zfs is $real" >&2; exit 1; }
cat > /usr/local/sbin/zfs <<'W'
#!/bin/sh
echo "$*" >> /run/zab-bench-zfs-calls
exec /usr/sbin/zfs "$@"
W
chmod 755 /usr/local/sbin/zfs
EOF2
}

bench_cleanup() {
    rm -f "$samples" "$traced"
    # shellcheck disable=SC2016 # expanded in the guest
    lab 'rm -f /usr/local/sbin/zfs /run/zab-bench-zfs-calls /run/zab-bench-zfs-times /run/zab-bench-stages; zpool destroy bench 2>/dev/null; rm -f /var/tmp/bench.img
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

trace_on() {
    lab sh -s <<'EOF2'
set -e
cat > /usr/local/sbin/zfs <<'W'
#!/bin/sh
s=$(date +%s%3N)
/usr/sbin/zfs "$@"
rc=$?
read -r p < /proc/$PPID/comm
echo "$s $(date +%s%3N) $p $*" >> /run/zab-bench-zfs-times
exit $rc
W
chmod 755 /usr/local/sbin/zfs
for t in zab-select zab-snap zab-send zab-thin; do
  [ -f /usr/local/bin/$t.timed ] || mv /usr/local/bin/$t /usr/local/bin/$t.timed
  cat > /usr/local/bin/$t <<W
#!/bin/sh
s=\$(date +%s%3N)
/usr/local/bin/$t.timed "\$@"
rc=\$?
n=$t; case \$1 in --*) n="$t:\${1%%=*}" ;; esac
echo "\$s \$(date +%s%3N) \$n" >> /run/zab-bench-stages
exit \$rc
W
  chmod 755 /usr/local/bin/$t
done
EOF2
}

trace_off() {
    # shellcheck disable=SC2016 # expanded in the guest
    lab 'rm -f /usr/local/sbin/zfs; for t in zab-select zab-snap zab-send zab-thin; do
        [ -f /usr/local/bin/$t.timed ] && mv /usr/local/bin/$t.timed /usr/local/bin/$t; done; true'
    count_wrapper
}

# trace_runs OPTS REPS: REPS traced runs of the wrapper with OPTS, into
# $traced (run, "call"|"stage", tool, call or stage, ms; tab-separated).
trace_runs() {
    : >"$traced"
    for r in $(seq "$2"); do
        sleep 1
        # shellcheck disable=SC2016 # expanded in the guest
        lab 'rm -f /run/zab-bench-zfs-times /run/zab-bench-stages
        s=$(date +%s%3N)
        zab-autobackup --exclude-received '"$1"' bench bench/tw >/dev/null 2>&1 || exit 1
        e=$(date +%s%3N)
        awk -v run='"$r"' -v s="$s" -v e="$e" '"'"'
          # Each tool, its runs added up (zab-thin:--end-record is the
          # wrapper checking each stage output).
          NR == FNR { if (!($3 in ms)) order[++k] = $3; ms[$3] += $2 - $1; sum += $2 - $1; next }
          { d = $2 - $1; st = $3; sub(/[.]tim.*/, "", st); $1 = ""; $2 = ""; $3 = ""; sub(/^ +/, "")
            # The argv up to its first dataset, for a short key.
            key = $0; sub(/ bench.*/, "", key); sub(/ -o [^ ]*/, "", key)
            printf "%s\tcall\t%s\t%s\t%d\n", run, st, key, d }
          END { for (i = 1; i <= k; i++) printf "%s\tstage\t%s\t-\t%d\n", run, order[i], ms[order[i]]
                printf "%s\tstage\tthe wrapper itself\t-\t%d\n", run, e - s - sum
                printf "%s\tstage\ttotal\t-\t%d\n", run, e - s }
        '"'"' /run/zab-bench-stages /run/zab-bench-zfs-times' >>"$traced" ||
            { echo "bench: zab-autobackup $1 failed" >&2; exit 1; }
    done
}

# trace_calls ST: the rows of the zfs calls made by ST in the last run (a
# tool, or anything else for the calls made through sh, as zab-send's
# transfers are), each with its median over the runs that made it.
trace_calls() {
    awk -F'\t' -v s="$1" -v last="$last" '$2 == "call" && $1 == last && ($3 == s || (s == "sh" && $3 !~ /^zab-/)) {print $4}' "$traced" | sort | uniq |
        while read -r key; do
            c=$(awk -F'\t' -v s="$1" -v k="$key" -v last="$last" '$2 == "call" && $1 == last && ($3 == s || (s == "sh" && $3 !~ /^zab-/)) && $4 == k' "$traced" | wc -l)
            ms=$(awk -F'\t' -v s="$1" -v k="$key" '$2 == "call" && ($3 == s || (s == "sh" && $3 !~ /^zab-/)) && $4 == k {print $5}' "$traced" | median)
            # shellcheck disable=SC2016 # backquotes are Markdown
            printf '| | `%s`%s | %s |\n' "$key" "$([[ $c -gt 1 ]] && echo " (x$c, median of one)")" "$ms"
        done
}

# trace_table: $traced as a Markdown table, stage by stage, with each
# one's calls. The calls are the last run's: the first quiet run after a
# change lists for zab-thin and writes its cache, the later ones are the
# steady state.
trace_table() {
    last=$(awk -F'\t' '{print $1}' "$traced" | sort -n | tail -1)
    printf '| stage | zfs call (of the last run) | ms |\n|---|---|---|\n'
    awk -F'\t' -v last="$last" '$2 == "stage" && $1 == last {print $3}' "$traced" | while read -r st; do
        ms=$(awk -F'\t' -v s="$st" '$2 == "stage" && $3 == s {print $5}' "$traced" | median)
        if [[ $st == total ]]; then
            if [[ -n $(trace_calls sh) ]]; then printf '| (through sh) | |  |\n'; trace_calls sh; fi
            printf '| **whole run** | %s zfs processes | **%s** |\n' \
                "$(awk -F'\t' -v last="$last" '$2 == "call" && $1 == last' "$traced" | wc -l)" "$ms"
            continue
        fi
        printf '| %s | (the whole stage) | %s |\n' "$st" "$ms"
        trace_calls "$st"
    done
}
