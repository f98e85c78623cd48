# bigtable-c: one non-recursive build.
#
#   make            build libraries, binaries and tests into build/
#   make test       build and run the whole suite (unit + integration)
#   make asan       ASan+UBSan build in build-asan/, runs the whole suite
#   make tsan       TSan build in build-tsan/, runs the whole suite
#   make bench      run bt-bench embedded for both engines (N=BENCH_N)
#   make run        start a local cluster in ./var (Ctrl-C stops it)
#   make install    install binaries, libbt.a, <bt/bt.h> and bt.pc under PREFIX
#   make clean      remove every build directory
#
# Sources are found by glob, so adding a module file needs no Makefile edit:
#   <module>/*.c          -> build/lib/libbtcore.a (except files named *_main.c)
#   tools/<name>_main.c   -> build/bin/bt-<name> (with tools/<name>_*.c)
#   tests/unit/test_*.c   -> build/tests/test_* (Criterion; linked with
#                            build/lib/libbttools.a of tools/*.c too)

CC      ?= cc
BUILD   ?= build
PREFIX  ?= /usr/local
SAN     ?=
OPT     ?= -O2 -g

WARN    := -std=c11 -Wall -Wextra -Werror
CPPFLAGS += -D_GNU_SOURCE -I. -MMD -MP
CFLAGS  += $(WARN) $(OPT) -pthread $(SANFLAGS)
LDLIBS  := -ledit -lsnappy -lxxhash -lleveldb -levent_pthreads -levent -lcurl -lcjson -lm -pthread
TESTLIBS := -lcriterion

ifeq ($(SAN),address)
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif
ifeq ($(SAN),thread)
SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer
# libcriterion cannot start under TSan: tests use the minimal compatible
# harness in tests/shim (headers first on the include path, shim_main.o
# linked instead of -lcriterion).
SHIM_OBJ := $(BUILD)/obj/tests/shim/shim_main.o
SHIM_HDR := tests/shim/criterion/criterion.h
TESTLIBS := $(SHIM_OBJ)
$(BUILD)/obj/tests/%.o: CPPFLAGS += -Itests/shim
endif
LDFLAGS += $(SANFLAGS)

LIB_DIRS  := common sstable tabletserver lockservice client master shell gateway
LIB_SRCS  := $(filter-out %_main.c,$(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c)))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
LIB       := $(BUILD)/lib/libbtcore.a

# The tools' own modules (tools/<name>_*.c, not the mains) also form an
# archive that test binaries link, so a tool's parsers can be unit-tested.
TOOLLIB_SRCS := $(filter-out %_main.c,$(wildcard tools/*.c))
TOOLLIB_OBJS := $(TOOLLIB_SRCS:%.c=$(BUILD)/obj/%.o)
TOOLLIB      := $(BUILD)/lib/libbttools.a

TOOL_SRCS := $(wildcard tools/*_main.c)
BINS      := $(patsubst tools/%_main.c,$(BUILD)/bin/bt-%,$(TOOL_SRCS))

TEST_SRCS := $(wildcard tests/unit/test_*.c)
TESTS     := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(TEST_SRCS))

DEPS_STAMP := $(BUILD)/.deps-ok

.PHONY: all test asan tsan bench run install clean deps FORCE
# Keep objects that pattern rules treat as intermediate (tool and test mains).
.SECONDARY:
all: $(LIB) $(BINS) $(TESTS)

# Installs missing Debian packages once per build directory (the script is
# idempotent and fast when everything is present).
$(DEPS_STAMP): scripts/install-deps.sh
	@mkdir -p $(dir $@)
	@scripts/install-deps.sh
	@touch $@
deps: $(DEPS_STAMP)

$(BUILD)/obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(TOOLLIB): $(TOOLLIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# A tool may be split over tools/<name>_*.c; every such file links into bt-<name>.
tool_objs = $(patsubst %.c,$(BUILD)/obj/%.o,$(filter-out %_main.c,$(wildcard tools/$(1)_*.c)))
.SECONDEXPANSION:
$(BUILD)/bin/bt-%: $(BUILD)/obj/tools/%_main.o $$(call tool_objs,$$*) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $(filter %.o,$^) $(LIB) $(LDLIBS) -o $@

$(BUILD)/tests/test_%: $(BUILD)/obj/tests/unit/test_%.o $(TOOLLIB) $(LIB) $(SHIM_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $< $(TOOLLIB) $(LIB) $(LDLIBS) $(TESTLIBS) -o $@
$(TEST_SRCS:%.c=$(BUILD)/obj/%.o): $(SHIM_HDR)

test: all
	@scripts/run-tests.sh $(BUILD)

asan:
	$(MAKE) BUILD=build-asan SAN=address OPT="-O1 -g" test

tsan:
	$(MAKE) BUILD=build-tsan SAN=thread OPT="-O1 -g" test

# libFuzzer target for the wire codec (needs clang and its fuzzer runtime).
# New inputs go to the first directory, so keep the seeds read-only:
#   make fuzz && build-fuzz/fuzz_rpc -max_total_time=60 build-fuzz/corpus tests/fuzz/corpus/rpc
# The same source built without libFuzzer replays inputs (e.g. a crash file):
#   make $(BUILD)/tests/fuzz_rpc_replay && $(BUILD)/tests/fuzz_rpc_replay FILE|DIR...
FUZZ_BUILD := build-fuzz
FUZZ_SRCS  := tests/fuzz/fuzz_rpc.c common/rpc_codec.c common/coding.c common/status.c
.PHONY: fuzz
fuzz: $(FUZZ_BUILD)/fuzz_rpc
$(FUZZ_BUILD)/fuzz_rpc: $(FUZZ_SRCS) common/rpc_codec.h common/coding.h common/status.h | $(DEPS_STAMP)
	@mkdir -p $(dir $@) $(FUZZ_BUILD)/corpus
	clang -D_GNU_SOURCE -I. -DBT_LIBFUZZER $(WARN) -O1 -g \
	  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined $(FUZZ_SRCS) -o $@
$(BUILD)/tests/fuzz_rpc_replay: $(BUILD)/obj/tests/fuzz/fuzz_rpc.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

BENCH_N   ?= 1000000
BENCH_DIR ?= /tmp/bt-bench
bench: all
	$(BUILD)/bin/bt-bench embedded --engine leveldb --n $(BENCH_N) --dir $(BENCH_DIR)/leveldb
	$(BUILD)/bin/bt-bench embedded --engine tablet --n $(BENCH_N) --dir $(BENCH_DIR)/tablet

# The local cluster: bt-cluster run --dir $(RUN_DIR) $(RUN_ARGS), in the
# foreground until Ctrl-C (e.g. make run RUN_ARGS="--servers 3").
RUN_DIR  ?= ./var
RUN_ARGS ?=
run: all
	@scripts/run-cluster.sh $(BUILD) $(RUN_DIR) $(RUN_ARGS)

# The SDK as users see it: the binaries, libbt.a (the same archive as
# libbtcore.a), the public headers as <bt/bt.h> and <bt/bt_status.h>, and
# bt.pc for `pkg-config --cflags --libs bt`.  The internal headers are not
# installed.  scripts/check-install.sh checks the result.
VERSION  := 0.1.0
PC_LIBS  := $(LDLIBS)
$(BUILD)/bt.pc: bt.pc.in Makefile FORCE
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' -e 's|@LIBS@|$(PC_LIBS)|g' bt.pc.in > $@
FORCE:

install: all $(BUILD)/bt.pc
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include/bt
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(LIB) $(DESTDIR)$(PREFIX)/lib/libbt.a
	install -m 644 client/bt.h client/bt_status.h $(DESTDIR)$(PREFIX)/include/bt/
	install -m 644 $(BUILD)/bt.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/bt.pc

clean:
	rm -rf build build-asan build-tsan $(FUZZ_BUILD)

-include $(LIB_OBJS:.o=.d) $(patsubst %.c,$(BUILD)/obj/%.d,$(wildcard tools/*.c)) $(TEST_SRCS:%.c=$(BUILD)/obj/%.d) $(SHIM_OBJ:.o=.d)
