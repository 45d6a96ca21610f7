# examples/examples.mk: builds the example programs (build/examples/ at -O2, build/examples/O0/
# at -O0, both with -g) and runs `make demo`. Included by the root Makefile; it must not change
# the flags of the shim or the report tool.

EX_DIR = $(BUILD)/examples
EX_PROGS = uthash_map ghash_map unordered_map dynarray
EX_BINS = $(addprefix $(EX_DIR)/,$(EX_PROGS)) $(addprefix $(EX_DIR)/O0/,$(EX_PROGS))
EX_HDR = examples/example.h
EX_CFLAGS = -std=gnu11 $(WARN) -g
EX_CXXFLAGS = -std=gnu++17 $(WARN) -g
# Deferred (=), so pkg-config runs only when ghash_map is built, after `make deps`.
EX_GLIB_CFLAGS = $(shell pkg-config --cflags glib-2.0)
EX_GLIB_LIBS = $(shell pkg-config --libs glib-2.0)

examples: $(EX_BINS)

$(EX_DIR) $(EX_DIR)/O0:
	mkdir -p $@

$(EX_DIR)/%: examples/%.c $(EX_HDR) | $(EX_DIR)
	$(CC) $(EX_CFLAGS) -O2 $(EX_EXTRA_CFLAGS) -o $@ $< $(EX_LIBS)

$(EX_DIR)/O0/%: examples/%.c $(EX_HDR) | $(EX_DIR)/O0
	$(CC) $(EX_CFLAGS) -O0 $(EX_EXTRA_CFLAGS) -o $@ $< $(EX_LIBS)

$(EX_DIR)/%: examples/%.cc $(EX_HDR) | $(EX_DIR)
	$(CXX) $(EX_CXXFLAGS) -O2 -o $@ $<

$(EX_DIR)/O0/%: examples/%.cc $(EX_HDR) | $(EX_DIR)/O0
	$(CXX) $(EX_CXXFLAGS) -O0 -o $@ $<

$(EX_DIR)/ghash_map $(EX_DIR)/O0/ghash_map: EX_EXTRA_CFLAGS = $(EX_GLIB_CFLAGS)
$(EX_DIR)/ghash_map $(EX_DIR)/O0/ghash_map: EX_LIBS = $(EX_GLIB_LIBS)

# The README's first command: build everything, profile the big uthash map, show where it grows
# and what pre-sizing saves.
demo: deps
	@$(MAKE) --no-print-directory all examples
	@sh examples/demo.sh $(BUILD)
