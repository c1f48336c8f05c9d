# upager build.  `make` builds everything into $(BUILD); `make check` runs
# the test suite; `make demo` runs the man-page demo and the feature probe.
# Both install the Debian packages they need first (tools/deps.sh).
#
#   make check SANITIZE=address,undefined   ASan+UBSan build in build-asan/
#   make check SANITIZE=thread              TSan build in build-tsan/
#   make WERROR=1                           warnings are errors (CI)
#   make fuzz FUZZ_SECONDS=N                fuzz the wire decoder, TLS, images
#   make install PREFIX=/usr/local DESTDIR=

VERSION := 0.1.0
SOVERSION := 0
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
# upager-bench goes here; `upager bench` finds it as ../libexec/upager
# from its own directory, so keep BINDIR and LIBEXECDIR side by side.
LIBEXECDIR ?= $(PREFIX)/libexec
MANDIR ?= $(PREFIX)/share/man

SANITIZE ?=
ifeq ($(SANITIZE),)
BUILD ?= build
else ifeq ($(SANITIZE),thread)
BUILD ?= build-tsan
else
BUILD ?= build-asan
endif

CC ?= cc
ifeq ($(V),1)
Q :=
else
Q := @
endif
WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wno-missing-field-initializers -Wformat=2 -Wvla
ifeq ($(WERROR),1)
WARN += -Werror
endif
OPT ?= -O2
SAN :=
ifneq ($(SANITIZE),)
SAN := -fsanitize=$(SANITIZE) -fno-sanitize-recover=all -fno-omit-frame-pointer
OPT := -O1
endif
CPPFLAGS += -Iinclude -Isrc -Icommon -D_GNU_SOURCE
CFLAGS += -std=gnu11 -g $(OPT) $(WARN) $(SAN) -pthread
LDFLAGS += $(SAN) -pthread
# The image store's codecs and checksum (Debian's libzstd, liblz4,
# libxxhash) and the memcached store's client (libmemcached); json-c
# reads Firecracker's handshake (src/manager/firecracker.c); OpenSSL is
# the page server's TLS (src/net/tls.c).  Also upager.pc's Libs.private.
LDLIBS += -lzstd -llz4 -lxxhash -lmemcached -ljson-c -lssl -lcrypto

# src/umap/ is not libupager: it is libupager-umap, UMap's API over
# libupager's public one (docs/UMAP.md).
UMAP_SRCS := $(wildcard src/umap/*.c)
UMAP_OBJS := $(UMAP_SRCS:%.c=$(BUILD)/%.o)
LIB_SRCS := $(filter-out $(UMAP_SRCS),$(wildcard src/*.c) $(wildcard src/*/*.c))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
# common/: what the programs beside the library share (messages, number
# arguments, JSON, /proc and the hugetlb pool), linked by the CLI, the
# benchmark and the tests; it depends on neither of them.
COMMON_SRCS := $(wildcard common/*.c)
COMMON_OBJS := $(COMMON_SRCS:%.c=$(BUILD)/%.o)
# tools/: the upager command (upager.c and cmd_*.c) and the daemon,
# upagerd (upagerd.c alone).
TOOL_SRCS := $(filter-out tools/upagerd.c,$(wildcard tools/*.c))
TOOL_OBJS := $(TOOL_SRCS:%.c=$(BUILD)/%.o)
TEST_HARNESS := $(BUILD)/tests/harness.o $(BUILD)/common/sysfs.o \
		$(BUILD)/common/memcached_server.o
TEST_SRCS := $(filter-out tests/harness.c,$(wildcard tests/*.c))
TESTS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
EXAMPLE_SRCS := $(wildcard examples/*.c)
EXAMPLES := $(EXAMPLE_SRCS:examples/%.c=$(BUILD)/examples/%)
# bench/: upager-bench (upager-bench.c and its parts, bench_*.c),
# upagerd-bench (with bench_util.c), relay, remote_tls (TLS against
# plaintext for the remote: store), image-restore and memcached-store.
BENCH_PARTS := $(patsubst %.c,$(BUILD)/%.o,$(wildcard bench/bench_*.c))
BENCH := $(BUILD)/bench/upager-bench
BENCHES := $(BENCH) $(BUILD)/bench/upagerd-bench $(BUILD)/bench/relay \
	   $(BUILD)/bench/remote_tls $(BUILD)/bench/image-restore \
	   $(BUILD)/bench/memcached-store $(BUILD)/bench/dirty-track \
	   $(BUILD)/bench/outofcore $(BUILD)/bench/snapshot

STATIC := $(BUILD)/libupager.a
SHARED := $(BUILD)/libupager.so.$(VERSION)
UMAP_STATIC := $(BUILD)/libupager-umap.a
UMAP_SHARED := $(BUILD)/libupager-umap.so.$(VERSION)
CLI := $(BUILD)/upager
DAEMON := $(BUILD)/upagerd
# A program written for UMap builds with these instead of UMap's -I and
# -lumap, and nothing else changed (tests/umap_style.c, in C and C++).
UMAP_INC := -Iinclude -Iinclude/upager/compat
UMAP_LIBS := -L$(BUILD) -Wl,-rpath,$(abspath $(BUILD)) -lupager-umap -lupager
CXX ?= g++
CXXFLAGS += -g $(OPT) -Wall -Wextra $(SAN) -pthread

.PHONY: all deps check demo install uninstall clean
# Keep objects: relinking a test must not recompile the harness.
.SECONDARY:
all: $(STATIC) $(SHARED) $(UMAP_STATIC) $(UMAP_SHARED) $(CLI) $(DAEMON) \
	$(TESTS) $(BUILD)/tests/umap_style_cxx $(EXAMPLES) $(BENCHES)

deps:
	@tools/deps.sh

$(BUILD)/%.o: %.c $(wildcard include/upager/*.h) $(wildcard src/*/*.h) \
		$(wildcard tests/*.h) $(wildcard tools/*.h) \
		$(wildcard common/*.h) $(wildcard bench/*.h)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -fPIC -fvisibility=hidden -c $< -o $@

$(STATIC): $(LIB_OBJS)
	$(Q)rm -f $@
	$(Q)ar rcs $@ $^

$(SHARED): $(LIB_OBJS) src/libupager.map
	$(Q)$(CC) -shared $(LDFLAGS) -Wl,-soname,libupager.so.$(SOVERSION) \
		-Wl,--version-script=src/libupager.map -o $@ $(LIB_OBJS) $(LDLIBS)
	$(Q)ln -sf libupager.so.$(VERSION) $(BUILD)/libupager.so.$(SOVERSION)
	$(Q)ln -sf libupager.so.$(SOVERSION) $(BUILD)/libupager.so

$(UMAP_STATIC): $(UMAP_OBJS)
	$(Q)rm -f $@
	$(Q)ar rcs $@ $^

# $ORIGIN: libupager is installed beside it, and a program's RUNPATH
# (what -rpath gives) does not serve its libraries' own dependencies.
$(UMAP_SHARED): $(UMAP_OBJS) src/umap/libupager-umap.map $(SHARED)
	$(Q)$(CC) -shared $(LDFLAGS) \
		-Wl,-soname,libupager-umap.so.$(SOVERSION) -Wl,-rpath,'$$ORIGIN' \
		-Wl,--version-script=src/umap/libupager-umap.map -o $@ \
		$(UMAP_OBJS) -L$(BUILD) -lupager
	$(Q)ln -sf libupager-umap.so.$(VERSION) $(BUILD)/libupager-umap.so.$(SOVERSION)
	$(Q)ln -sf libupager-umap.so.$(SOVERSION) $(BUILD)/libupager-umap.so

# Programs beside the library see its public headers only, and so does
# libupager-umap, a layer above it.
$(BUILD)/tools/%.o $(BUILD)/bench/%.o $(BUILD)/examples/%.o \
$(BUILD)/common/%.o $(BUILD)/src/umap/%.o: CPPFLAGS := $(filter-out -Isrc,$(CPPFLAGS))

$(CLI): $(TOOL_OBJS) $(COMMON_OBJS) $(STATIC)
	$(Q)$(CC) $(LDFLAGS) -o $@ $(TOOL_OBJS) $(COMMON_OBJS) $(STATIC) \
		$(LDLIBS) -lm

$(DAEMON): $(BUILD)/tools/upagerd.o $(COMMON_OBJS) $(STATIC)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(COMMON_OBJS) $(STATIC) $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TEST_HARNESS) $(STATIC)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(TEST_HARNESS) $(STATIC) $(LDLIBS) -lm

# Tests of the UMap API with the harness: static, as the others.
$(BUILD)/tests/umap_%: $(BUILD)/tests/umap_%.o $(TEST_HARNESS) $(UMAP_STATIC) $(STATIC)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(TEST_HARNESS) $(UMAP_STATIC) $(STATIC) $(LDLIBS)

# A program in UMap's style, as its users build it: its own flags, the
# UMap ones swapped for UMAP_INC and UMAP_LIBS, the shared libraries; and
# the same source as C++.
$(BUILD)/tests/umap_style: tests/umap_style.c include/upager/umap.h $(UMAP_SHARED)
	@mkdir -p $(dir $@)
	$(Q)$(CC) -std=gnu11 -g $(OPT) $(WARN) $(SAN) -pthread $(UMAP_INC) \
		-o $@ $< $(UMAP_LIBS)

$(BUILD)/tests/umap_style_cxx: tests/umap_style.c include/upager/umap.h $(UMAP_SHARED)
	@mkdir -p $(dir $@)
	$(Q)$(CXX) -x c++ $(CXXFLAGS) $(UMAP_INC) -o $@ $< -x none $(UMAP_LIBS)

$(BUILD)/examples/%: $(BUILD)/examples/%.o $(STATIC)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(STATIC) $(LDLIBS)

# The benchmark links the library and common/, never tools/ (and the CLI
# never bench/: `upager bench` runs this program).
$(BENCH): $(BUILD)/bench/upager-bench.o $(BENCH_PARTS) $(COMMON_OBJS) $(STATIC)
	$(Q)$(CC) $(LDFLAGS) -o $@ $(BUILD)/bench/upager-bench.o $(BENCH_PARTS) \
		$(COMMON_OBJS) $(STATIC) $(LDLIBS) -lm

$(BUILD)/bench/upagerd-bench: $(BUILD)/bench/upagerd-bench.o \
		$(BUILD)/bench/bench_util.o $(COMMON_OBJS) $(STATIC)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(BUILD)/bench/bench_util.o \
		$(COMMON_OBJS) $(STATIC) $(LDLIBS) -lm

# image: restores against file: (docs/BENCHMARKS.md, "Page images").
$(BUILD)/bench/image-restore: $(BUILD)/bench/image_restore.o $(COMMON_OBJS) $(STATIC)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(COMMON_OBJS) $(STATIC) $(LDLIBS)

# memcached: against a bare memcached_get() and file: ("The memcached store").
$(BUILD)/bench/memcached-store: $(BUILD)/bench/memcached_store.o \
		$(BUILD)/bench/bench_util.o $(BUILD)/bench/bench_bare.o \
		$(COMMON_OBJS) $(STATIC)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(BUILD)/bench/bench_util.o \
		$(BUILD)/bench/bench_bare.o $(COMMON_OBJS) $(STATIC) $(LDLIBS)

# Issue 10's benchmarks, each a program over the public API and
# bench_util.c: dirty tracking ("Dirty tracking"), out-of-core against a
# memory cgroup ("Out of core"), live snapshots against fork()
# ("Live snapshots").
$(BUILD)/bench/dirty-track: $(BUILD)/bench/dirty_track.o \
		$(BUILD)/bench/bench_util.o $(COMMON_OBJS) $(STATIC)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(BUILD)/bench/bench_util.o \
		$(COMMON_OBJS) $(STATIC) $(LDLIBS) -lm

$(BUILD)/bench/outofcore: $(BUILD)/bench/outofcore.o \
		$(BUILD)/bench/bench_util.o $(COMMON_OBJS) $(STATIC)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(BUILD)/bench/bench_util.o \
		$(COMMON_OBJS) $(STATIC) $(LDLIBS) -lm

$(BUILD)/bench/snapshot: $(BUILD)/bench/snapshot.o \
		$(BUILD)/bench/bench_util.o $(COMMON_OBJS) $(STATIC)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(BUILD)/bench/bench_util.o \
		$(COMMON_OBJS) $(STATIC) $(LDLIBS) -lm

$(BUILD)/bench/relay: $(BUILD)/bench/relay.o
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(LDLIBS)

$(BUILD)/bench/remote_tls: $(BUILD)/bench/remote_tls.o $(STATIC)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(STATIC) $(LDLIBS)

check: deps
	@$(MAKE) --no-print-directory all
	@SANITIZE=$(SANITIZE) tests/run.sh $(BUILD)

demo: deps
	@$(MAKE) --no-print-directory $(CLI)
	@$(CLI) demo 3
	@echo
	@$(CLI) features

install: $(STATIC) $(SHARED) $(UMAP_STATIC) $(UMAP_SHARED) $(CLI) $(DAEMON) \
		$(BENCH)
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)/upager \
		$(DESTDIR)$(INCLUDEDIR)/upager/compat/umap \
		$(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBEXECDIR)/upager \
		$(DESTDIR)$(MANDIR)/man1
	install -m 644 include/upager/*.h $(DESTDIR)$(INCLUDEDIR)/upager/
	install -m 644 include/upager/compat/umap/umap.h \
		$(DESTDIR)$(INCLUDEDIR)/upager/compat/umap/
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf libupager.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libupager.so.$(SOVERSION)
	ln -sf libupager.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libupager.so
	install -m 644 $(UMAP_STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(UMAP_SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf libupager-umap.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libupager-umap.so.$(SOVERSION)
	ln -sf libupager-umap.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libupager-umap.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    -e 's|@LIBS@|$(LDLIBS)|' upager.pc.in \
	    > $(DESTDIR)$(LIBDIR)/pkgconfig/upager.pc
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    upager-umap.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/upager-umap.pc
	install -m 755 $(CLI) $(DAEMON) $(DESTDIR)$(BINDIR)/
	install -m 755 $(BENCH) $(DESTDIR)$(LIBEXECDIR)/upager/
	install -m 644 man/*.1 $(DESTDIR)$(MANDIR)/man1/

uninstall:
	rm -rf $(DESTDIR)$(INCLUDEDIR)/upager
	rm -f $(DESTDIR)$(LIBDIR)/libupager.* $(DESTDIR)$(LIBDIR)/pkgconfig/upager.pc
	rm -f $(DESTDIR)$(LIBDIR)/libupager-umap.* \
		$(DESTDIR)$(LIBDIR)/pkgconfig/upager-umap.pc
	rm -f $(DESTDIR)$(BINDIR)/upager $(DESTDIR)$(MANDIR)/man1/upager.1
	rm -f $(DESTDIR)$(BINDIR)/upagerd $(DESTDIR)$(MANDIR)/man1/upagerd.1
	rm -rf $(DESTDIR)$(LIBEXECDIR)/upager

clean:
	rm -rf build build-asan build-tsan

# `make fuzz FUZZ_SECONDS=N`: the wire decoder under libFuzzer, ASan and
# UBSan for N seconds (default 30), built with clang from src/net/wire.c alone,
# then the TLS handshake (fuzz/tls_fuzz.c: src/net/tls.c, net.c, wire.c and
# Debian's OpenSSL) for as long, then the page image reader as long
# (fuzz/image_fuzz.c: src/store/image.c, image_fmt.c, src/base/util.c and
# the codecs; -close_fd_mask=2 drops the line image.c writes to stderr for
# each bad chunk, the fuzzer's own output stays).
# The corpora are $(BUILD)/fuzz/corpus, tls-corpus and image-corpus: the
# seeds fuzz/seeds.c, tls_seeds.c and image_seeds.c write, and what the
# fuzzer adds, kept between runs; a crash is saved beside them.
FUZZ_SECONDS ?= 30
FUZZ_CC ?= clang
FUZZ := $(BUILD)/fuzz
FUZZ_CFLAGS := -std=gnu11 -g -O1 $(WARN) -fno-omit-frame-pointer \
	-fno-sanitize-recover=all

.PHONY: fuzz
fuzz:
	@tools/deps.sh fuzz
	@$(MAKE) --no-print-directory $(FUZZ)/wire_fuzz $(FUZZ)/seeds \
		$(FUZZ)/tls_fuzz $(FUZZ)/tls_seeds $(FUZZ)/image_fuzz \
		$(FUZZ)/image_seeds
	$(Q)mkdir -p $(FUZZ)/corpus $(FUZZ)/tls-corpus $(FUZZ)/image-corpus
	$(Q)$(FUZZ)/seeds $(FUZZ)/corpus
	$(FUZZ)/wire_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=1100000 \
		-timeout=10 -print_final_stats=1 -artifact_prefix=$(FUZZ)/ \
		$(FUZZ)/corpus
	$(Q)$(FUZZ)/tls_seeds $(FUZZ)/tls-corpus
	$(FUZZ)/tls_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=60000 \
		-timeout=10 -print_final_stats=1 -artifact_prefix=$(FUZZ)/tls- \
		$(FUZZ)/tls-corpus
	$(Q)$(FUZZ)/image_seeds $(FUZZ)/image-corpus
	$(FUZZ)/image_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
		-timeout=10 -close_fd_mask=2 -print_final_stats=1 \
		-artifact_prefix=$(FUZZ)/image- $(FUZZ)/image-corpus

$(FUZZ)/wire_fuzz: fuzz/wire_fuzz.c fuzz/wire_check.h src/net/wire.c src/net/wire.h
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) \
		-fsanitize=fuzzer,address,undefined -o $@ fuzz/wire_fuzz.c src/net/wire.c

$(FUZZ)/seeds: fuzz/seeds.c src/net/wire.c src/net/wire.h
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=address,undefined \
		-o $@ fuzz/seeds.c src/net/wire.c

FUZZ_TLS_SRCS := src/net/tls.c src/net/net.c src/net/wire.c
FUZZ_TLS_DEPS := $(FUZZ_TLS_SRCS) src/net/tls.h src/net/net.h src/net/wire.h \
	fuzz/tls_key.h

$(FUZZ)/tls_fuzz: fuzz/tls_fuzz.c $(FUZZ_TLS_DEPS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -pthread \
		-fsanitize=fuzzer,address,undefined -o $@ fuzz/tls_fuzz.c \
		$(FUZZ_TLS_SRCS) $(LDLIBS)

$(FUZZ)/tls_seeds: fuzz/tls_seeds.c $(FUZZ_TLS_DEPS)
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -pthread \
		-fsanitize=address,undefined -o $@ fuzz/tls_seeds.c \
		$(FUZZ_TLS_SRCS) $(LDLIBS)

FUZZ_IMAGE_SRCS := src/store/image_fmt.c src/base/util.c
FUZZ_IMAGE_DEPS := $(FUZZ_IMAGE_SRCS) src/store/image_fmt.h src/base/util.h \
	src/base/le.h include/upager/image.h include/upager/store.h
FUZZ_IMAGE_LIBS := -lzstd -llz4 -lxxhash

$(FUZZ)/image_fuzz: fuzz/image_fuzz.c src/store/image.c src/store/builtin.h \
		src/engine/store_call.h $(FUZZ_IMAGE_DEPS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -pthread \
		-fsanitize=fuzzer,address,undefined -o $@ fuzz/image_fuzz.c \
		src/store/image.c $(FUZZ_IMAGE_SRCS) $(FUZZ_IMAGE_LIBS)

$(FUZZ)/image_seeds: fuzz/image_seeds.c src/store/image_write.c \
		$(FUZZ_IMAGE_DEPS)
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -pthread \
		-fsanitize=address,undefined -o $@ fuzz/image_seeds.c \
		src/store/image_write.c $(FUZZ_IMAGE_SRCS) $(FUZZ_IMAGE_LIBS)

# The codec's test shares the fuzzer's re-encoder.
$(BUILD)/tests/wire_codec.o: fuzz/wire_check.h
