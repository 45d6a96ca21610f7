# bench/bench.mk: builds the benchmark programs into build/bench/ and runs `make bench` (full run,
# about 4 minutes on 2 cores, figures to bench/RESULTS.md), `make bench BENCH_QUICK=1` (under a
# minute, figures to build/bench/) and `make bench-perf` (the shim's hot path under perf).
# Included by the root Makefile; it must not change the shim's or the report's flags.

BENCH_DIR = $(BUILD)/bench
BENCH_PROGS = measure alloc_pairs realloc_grow chain_tree thread_churn
BENCH_BINS = $(addprefix $(BENCH_DIR)/,$(BENCH_PROGS))
# Reference points for workload 1: a preload that only forwards, and one that also walks.
BENCH_FLOORS = $(BENCH_DIR)/floor_forward.so $(BENCH_DIR)/floor_fpwalk.so
# Frame pointers everywhere, so MAPPROF_UNWIND=fp has a chain to walk; -g for the report.
BENCH_CFLAGS = -std=gnu11 $(WARN) -O2 -g -fno-omit-frame-pointer -D_GNU_SOURCE
BENCH_QUICK ?=

.PHONY: bench bench-progs bench-perf

# Workload 2 is the uthash example (examples/examples.mk builds it); run.py skips it if absent.
bench-progs: $(BENCH_BINS) $(BENCH_FLOORS) $(if $(EX_DIR),$(EX_DIR)/uthash_map)

$(BENCH_DIR):
	mkdir -p $@

$(BENCH_DIR)/%: bench/%.c bench/bench.h | $(BENCH_DIR)
	$(CC) $(BENCH_CFLAGS) -o $@ $< -lpthread

$(BENCH_DIR)/floor_forward.so: bench/floor.c | $(BENCH_DIR)
	$(CC) $(BENCH_CFLAGS) -fPIC -shared -o $@ $< -ldl -lpthread

$(BENCH_DIR)/floor_fpwalk.so: bench/floor.c | $(BENCH_DIR)
	$(CC) $(BENCH_CFLAGS) -DFLOOR_WALK -ftls-model=initial-exec -fPIC -shared -o $@ $< -ldl -lpthread

bench: deps-bench
	$(MAKE) all bench-progs
	BENCH_QUICK=$(BENCH_QUICK) python3 bench/run.py --build $(BUILD)

# The shim's hot path on workload 1 in each mode: `perf record -g`, top symbols (needs perf).
bench-perf: deps-bench
	$(MAKE) all bench-progs
	python3 bench/run.py --build $(BUILD) --perf
