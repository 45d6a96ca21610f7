#!/bin/sh
# demo.sh: what `make demo` shows: the big uthash map profiled, the growth report that finds its
# bucket expansions, and the diff against the same map pre-sized. Reads and runs only what is in
# the build directory (argument 1, default build); never needs the network or root.
set -eu

BUILD=${1:-build}
LIB=$BUILD/libmapprof.so
MAPPROF=$BUILD/mapprof
EX=$BUILD/examples
ITEMS=10000

for f in "$LIB" "$MAPPROF" "$EX/uthash_map"; do
	if [ ! -x "$f" ] && [ ! -f "$f" ]; then
		echo "demo: $f is missing; run 'make all examples' first" >&2
		exit 1
	fi
done

DIR=$(mktemp -d "${TMPDIR:-/tmp}/mapprof-demo.XXXXXX")
trap 'rm -rf "$DIR"' EXIT INT TERM

say() {
	printf '\n\033[1m== %s\033[0m\n' "$*"
}

# Prints the example's own count of its allocations (its JSON line) in one sentence.
summary() {
	python3 -c '
import json, sys
t = json.loads(sys.stdin.read().splitlines()[-1])
g = t["growth"]
print("   the program counted %d allocations, %d bytes; %d of them bucket expansions (%d bytes)" %
      (t["allocs"]["objects"], t["allocs"]["bytes"], g["allocations"], g["bytes"]))
print("   buckets: %d at first, %d at the end" % (t["initial_buckets"], t["final_buckets"]))'
}

say "1. A uthash map of $ITEMS accounts keyed by strings, profiled"
echo "   \$ LD_PRELOAD=$LIB $EX/uthash_map $ITEMS"
MAPPROF_OUT=$DIR/big.dump LD_PRELOAD=$LIB "$EX/uthash_map" $ITEMS >"$DIR/big.json"
summary <"$DIR/big.json"

say "2. Where does it grow? (uthash grows inside a macro: only the doubling sizes give it away)"
echo "   \$ mapprof growth big.dump"
"$MAPPROF" growth "$DIR/big.dump"

say "3. The same map with its buckets sized up front (HASH_INITIAL_NUM_BUCKETS_LOG2)"
echo "   \$ LD_PRELOAD=$LIB $EX/uthash_map $ITEMS --presize"
MAPPROF_OUT=$DIR/presized.dump LD_PRELOAD=$LIB "$EX/uthash_map" $ITEMS --presize \
	>"$DIR/presized.json"
summary <"$DIR/presized.json"

say "4. What pre-sizing saved"
echo "   \$ mapprof diff big.dump presized.dump"
"$MAPPROF" diff "$DIR/big.dump" "$DIR/presized.dump"

echo
echo "More examples (GLib GHashTable, std::unordered_map, a realloc-doubling array) are in"
echo "examples/README.md; each prints its own count of its allocations to compare with mapprof."
