# mapprof: malloc profiler. `make demo` and `make test` are all a user needs on
# a fresh Debian 12 machine; both install missing packages first (`make deps`).

PREFIX ?= /usr/local
CC ?= gcc
CXX ?= g++
BUILD ?= build

# Debian packages the build, the tests and the demo use. `make deps` installs
# the missing ones with apt-get and does nothing when all are present.
DEPS_BUILD = gcc g++ make pkg-config libunwind-dev uthash-dev libdw-dev libelf-dev zlib1g-dev libiberty-dev
DEPS_EXAMPLES = libglib2.0-dev
DEPS_TEST = python3 clang libclang-rt-14-dev valgrind libjemalloc2 libtcmalloc-minimal4 golang-go binutils chromium clang-format
DEPS = $(DEPS_BUILD) $(DEPS_EXAMPLES) $(DEPS_TEST)

WARN = -Wall -Wextra -Werror
CFLAGS ?= -O2 -g
BASE_CFLAGS = -std=gnu11 $(WARN) -Iinclude -D_GNU_SOURCE
SHIM_CFLAGS = $(BASE_CFLAGS) -fexceptions -fPIC -fvisibility=hidden -ftls-model=initial-exec -fno-omit-frame-pointer
# The shim is optimized as one unit: its hooks, walk and tables live in files
# of their own, and -O3 with link-time optimization runs workload 1 3-5%
# faster than -O2 in every mode. It comes after CFLAGS: a build to debug the
# shim empties it (make CFLAGS='-O0 -g' SHIM_OPT=).
SHIM_OPT ?= -O3 -flto=auto
# Bound at load (-z now): a function the shim calls first inside a signal
# handler on a small alternate stack would otherwise go through the dynamic
# loader's resolver, which saves the whole register state on that stack.
SHIM_LIBS = -Wl,-z,now -Wl,--no-as-needed -lunwind -ldl -lpthread -lm
REPORT_CFLAGS = $(BASE_CFLAGS) -fno-omit-frame-pointer
REPORT_LIBS = -ldw -lelf -lz -liberty -lm
SAN_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all

SHIM_SRC = $(wildcard shim/*.c)
SHIM_HDR = $(wildcard shim/*.h) include/mapprof_dump.h
REPORT_SRC = $(wildcard report/*.c)
REPORT_HDR = $(wildcard report/*.h) include/mapprof_dump.h

LIB = $(BUILD)/libmapprof.so
CMD = $(BUILD)/mapprof
CMD_SAN = $(BUILD)/mapprof-asan

.PHONY: all deps deps-bench demo test bench install uninstall format format-check clean examples

all: $(LIB) $(CMD)

$(LIB): $(SHIM_SRC) $(SHIM_HDR) | $(BUILD)
	$(CC) $(SHIM_CFLAGS) $(CFLAGS) $(SHIM_OPT) -shared -o $@ $(SHIM_SRC) $(SHIM_LIBS)

# The shim with its per-thread counters' size limit lowered, for the suite
# (tests/test_shim_size_classes.py): every run crosses it many times.
LIB_LIMITS = $(BUILD)/tests/libmapprof-limits.so
$(LIB_LIMITS): $(SHIM_SRC) $(SHIM_HDR)
	mkdir -p $(dir $@)
	$(CC) $(SHIM_CFLAGS) $(CFLAGS) $(SHIM_OPT) -DMP_TC_BIG=1000 -shared -o $@ $(SHIM_SRC) $(SHIM_LIBS)

$(CMD): $(REPORT_SRC) $(REPORT_HDR) | $(BUILD)
	$(CC) $(REPORT_CFLAGS) $(CFLAGS) -o $@ $(REPORT_SRC) $(REPORT_LIBS)

# The report tool under AddressSanitizer and UndefinedBehaviorSanitizer, for the suite.
$(CMD_SAN): $(REPORT_SRC) $(REPORT_HDR) | $(BUILD)
	$(CC) $(REPORT_CFLAGS) -O1 -g $(SAN_FLAGS) -o $@ $(REPORT_SRC) $(REPORT_LIBS)

$(BUILD):
	mkdir -p $@

# `make bench` also compares with heaptrack and records with perf.
DEPS_BENCH = heaptrack linux-perf

deps:
	@$(call install_missing,$(DEPS))

deps-bench: deps
	@$(call install_missing,$(DEPS_BENCH))

define install_missing
missing=""; for p in $(1); do \
  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
done; \
if [ -n "$$missing" ]; then \
  echo "mapprof: installing Debian packages:$$missing"; \
  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
  tries=0; \
  until out=$$($$SUDO apt-get update -qq 2>&1); do \
    case "$$out" in *"Could not get lock"*) ;; *) printf '%s\n' "$$out" >&2; exit 1;; esac; \
    tries=$$((tries + 1)); [ $$tries -lt 120 ] || { printf '%s\n' "$$out" >&2; exit 1; }; \
    [ $$tries -gt 1 ] || echo "mapprof: waiting for another apt to finish"; sleep 5; \
  done; \
  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq $$missing >/dev/null; \
fi
endef

-include examples/examples.mk
-include tests/tests.mk
-include bench/bench.mk
-include tests/soak.mk

test: deps
	$(MAKE) all $(CMD_SAN) $(LIB_LIMITS)
	python3 tests/run.py

# The docs keep the source tree's layout (README.md beside docs/), so the README's links work.
DOC_FILES = docs/cli.md docs/dump-format.md docs/flame-uthash.svg

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include
	install -m 755 $(LIB) $(DESTDIR)$(PREFIX)/lib/libmapprof.so
	install -m 755 $(CMD) $(DESTDIR)$(PREFIX)/bin/mapprof
	install -m 644 include/mapprof_dump.h $(DESTDIR)$(PREFIX)/include/mapprof_dump.h
	install -d $(DESTDIR)$(PREFIX)/share/doc/mapprof/docs
	install -m 644 README.md $(DESTDIR)$(PREFIX)/share/doc/mapprof/
	install -m 644 $(DOC_FILES) $(DESTDIR)$(PREFIX)/share/doc/mapprof/docs/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/lib/libmapprof.so $(DESTDIR)$(PREFIX)/bin/mapprof \
	  $(DESTDIR)$(PREFIX)/include/mapprof_dump.h \
	  $(DESTDIR)$(PREFIX)/share/doc/mapprof/README.md \
	  $(addprefix $(DESTDIR)$(PREFIX)/share/doc/mapprof/,$(DOC_FILES))
	-rmdir $(DESTDIR)$(PREFIX)/share/doc/mapprof/docs $(DESTDIR)$(PREFIX)/share/doc/mapprof 2>/dev/null

FORMAT_FILES = $(wildcard include/*.h shim/*.[ch] report/*.[ch] examples/*.[ch] examples/*.cc tests/progs/*.[ch] tests/progs/*.cc tests/fuzz/*.c bench/*.[ch])
format:
	clang-format -i $(FORMAT_FILES)
format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)

clean:
	rm -rf $(BUILD)
