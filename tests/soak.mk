# soak.mk: `make soak`: the stress test (threads, forks and signals at once, exact totals
# afterwards) for minutes instead of seconds. Included by the root Makefile; adds no other target.
SOAK_SECONDS ?= 300

.PHONY: soak
soak: deps
	$(MAKE) all $(CMD_SAN)
	MAPPROF_TEST_SOAK_SECONDS=$(SOAK_SECONDS) python3 tests/run.py -v -k test_robust_stress.test_soak
