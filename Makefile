# nabla — one command builds the library (static and shared), the `nabla`
# tool and the examples:  make
#   make tests       build the test programs (needs cmocka)
#   make test        build and run the test suite
#   make sanitize    build with ASan+UBSan (clang) into build-san/ and run the suite
#   make check       install the test dependencies if missing, then both:
#                    the command CI runs
#   make CC=clang    the same build with clang
#   make install     install library, header, tool, nabla.pc and man page
#                    under PREFIX (default /usr/local), staged in DESTDIR
#   make uninstall   remove exactly what install put there
# The default build targets the architecture's baseline (no -march=native):
# every fast kernel in src/kernels/targets/ is compiled once per SIMD target
# of the architecture (ISA_TARGETS) and the best the CPU has is picked at run
# time, so a binary runs on any x86-64 or AArch64 machine.

CC      ?= cc
BUILD   ?= build
OPT     ?= -O2
CFLAGS  ?=
CFLAGS  += -std=c11 $(OPT) -g -Wall -Wextra -Werror -fopenmp -fPIC -Iinclude -Isrc \
           -fno-math-errno -D_POSIX_C_SOURCE=200809L $(EXTRA_CFLAGS)
# The machine the compiler builds for, and the SIMD targets kernels are
# compiled for there, best first (per-target kernel rules use ISA_TARGETS).
# Nothing x86-specific is passed on aarch64.  make arch  prints both.
MACHINE := $(shell $(CC) -dumpmachine)
ifneq ($(filter aarch64-% arm64-%,$(MACHINE)),)
ARCH        := aarch64
ISA_TARGETS := neon generic
else ifneq ($(filter x86_64-% amd64-%,$(MACHINE)),)
ARCH        := x86_64
ISA_TARGETS := avx512 avx2 generic
else
ARCH        := $(firstword $(subst -, ,$(MACHINE)))
ISA_TARGETS := generic
endif
# A cross build asks pkg-config about the target's libraries (Debian's
# multiarch -dev packages put their .pc files under /usr/lib/<triplet>).
ifeq ($(shell uname -m),$(ARCH))
PKG_CONFIG ?= pkg-config
else
PKG_CONFIG ?= PKG_CONFIG_LIBDIR=/usr/lib/$(MACHINE)/pkgconfig:/usr/share/pkgconfig pkg-config
endif

# The libraries nabla links, by pkg-config name: the link line and the
# installed nabla.pc's Requires.private both come from this one list.
PKG_DEPS := zlib libpng libjpeg libcjson
# MPI, for data-parallel training, is optional: MPI=1 requires Open MPI,
# MPI=0 leaves it out, and by default it is used when pkg-config finds it.
# Only src/nn/distributed.c includes mpi.h; a build with MPI links it and
# names it in nabla.pc. A change of MPI rebuilds that file (mpi.flag).
MPI ?= $(shell $(PKG_CONFIG) --exists ompi-c && echo 1 || echo 0)
ifeq ($(MPI),1)
ifneq ($(shell $(PKG_CONFIG) --exists ompi-c && echo yes),yes)
$(error MPI=1, but pkg-config finds no ompi-c: apt-get install libopenmpi-dev openmpi-bin)
endif
PKG_DEPS   += ompi-c
MPI_CFLAGS := $(shell $(PKG_CONFIG) --cflags ompi-c) -DNB_HAVE_MPI
endif
MPI_FLAG := $(BUILD)/mpi.flag
$(shell mkdir -p $(BUILD) && (echo $(MPI) | cmp -s - $(MPI_FLAG) || echo $(MPI) > $(MPI_FLAG)))
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(PKG_DEPS))
LDLIBS  += $(PKG_LIBS) -lm
# The tool alone also draws pictures with cairo; the library does not.
TOOL_PKG_DEPS := cairo fontconfig
TOOL_CFLAGS   := $(shell $(PKG_CONFIG) --cflags $(TOOL_PKG_DEPS))
TOOL_LIBS     := $(shell $(PKG_CONFIG) --libs $(TOOL_PKG_DEPS))
LDFLAGS += -fopenmp $(EXTRA_LDFLAGS)


LIB_SRC   := $(sort $(wildcard src/*/*.c))
TOOL_SRC  := $(sort $(wildcard tools/*.c))
TEST_SRC  := $(sort $(wildcard tests/test_*.c))
EX_SRC    := $(sort $(wildcard examples/*.c))
BENCH_SRC := $(sort $(wildcard bench/*.c))

# SIMD targets: each file of src/kernels/targets/ is built once per target
# with that target's flags and NB_TARGET_<name>, into build/isa/<name>/.
ISA_FLAGS_avx512  := -mavx512f -mavx2 -mfma
ISA_FLAGS_avx2    := -mavx2 -mfma
ISA_FLAGS_neon    :=
ISA_FLAGS_generic :=
ISA_SRC := $(sort $(wildcard src/kernels/targets/*.c))
ISA_OBJ := $(foreach t,$(ISA_TARGETS),$(ISA_SRC:src/kernels/targets/%.c=$(BUILD)/isa/$(t)/%.o))

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o) $(ISA_OBJ)
TOOL_OBJ := $(TOOL_SRC:%.c=$(BUILD)/%.o)
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
EXAMPLES := $(EX_SRC:examples/%.c=$(BUILD)/examples/%)
BENCHES  := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

# Building and training need no test framework: the tests build with `make
# tests` (and `make test`), whose dependencies scripts/install-test-deps.sh
# installs.
all: $(BUILD)/libnabla.a $(BUILD)/libnabla.so $(BUILD)/nabla $(EXAMPLES) $(BENCHES)

tests: all $(TESTS) $(BUILD)/tests/header_example

$(BUILD)/%.o: %.c $(wildcard include/*.h src/*/*.h src/kernels/*/*.h tools/*.h tests/*.h tests/fixtures/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

define ISA_RULE
$(BUILD)/isa/$(1)/%.o: src/kernels/targets/%.c $(wildcard include/*.h src/*/*.h src/kernels/*/*.h)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) $(ISA_FLAGS_$(1)) -DNB_TARGET_$(1) -c $$< -o $$@
endef
$(foreach t,$(ISA_TARGETS),$(eval $(call ISA_RULE,$(t))))

$(BUILD)/src/nn/distributed.o: CFLAGS += $(MPI_CFLAGS)
$(BUILD)/src/nn/distributed.o: $(MPI_FLAG)

$(BUILD)/libnabla.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The version is nabla.h's NB_VERSION; the soname carries its major number.
VERSION  := $(shell sed -n 's/^\#define NB_VERSION "\(.*\)"/\1/p' include/nabla.h)
SOMAJOR  := $(firstword $(subst ., ,$(VERSION)))
SONAME   := libnabla.so.$(SOMAJOR)

$(BUILD)/libnabla.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,$(SONAME) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/nabla: $(TOOL_OBJ) $(BUILD)/libnabla.a
	$(CC) $(LDFLAGS) -o $@ $^ $(TOOL_LIBS) $(LDLIBS)

$(BUILD)/tools/%.o: tools/%.c $(wildcard include/*.h tools/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(TOOL_CFLAGS) -c $< -o $@

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/tests/support.o $(BUILD)/libnabla.a
	$(CC) $(LDFLAGS) -o $@ $^ -lcmocka $(LDLIBS)

$(BUILD)/tests/support.o: tests/support.c tests/support.h include/nabla.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# The worked example that opens nabla.h, cut out of the comment and compiled,
# so the header's first lesson can never drift from the API.
$(BUILD)/tests/header_example: include/nabla.h $(BUILD)/libnabla.a
	@mkdir -p $(dir $@)
	sed -n '/^ \*     #include <nabla.h>/,/^ \*     }$$/p' include/nabla.h | sed -e 's/^ \*     //' -e 's/^ \*$$//' > $@.c
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $@.c $(BUILD)/libnabla.a $(LDLIBS)

$(BUILD)/examples/%: $(BUILD)/examples/%.o $(BUILD)/libnabla.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(BUILD)/libnabla.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Tests run from the repository root so fixtures resolve; each prints
# cmocka's summary, and the run ends with one "N passed, N failed" line.
# tests/test_install.c builds examples against an installed copy with the
# suite's compiler and link flags (the sanitizer build's need its runtime).
test: tests
	@BUILD=$(BUILD) NB_CC="$(CC)" NB_LDFLAGS="$(EXTRA_LDFLAGS)" sh tests/run.sh $(TESTS)

SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# At -O1 clang does not vectorise, and warns of each `omp simd` loop it leaves.
CLANG_O1 := -Wno-pass-failed
sanitize:
	NB_TEST_QUICK=1 $(MAKE) BUILD=build-san CC=clang OPT=-O1 EXTRA_CFLAGS="$(SAN_FLAGS) $(CLANG_O1)" \
	        EXTRA_LDFLAGS="$(SAN_FLAGS)" test

# One after the other, so each suite's closing line stands on its own.
check:
	sh scripts/install-test-deps.sh
	$(MAKE) test
	$(MAKE) sanitize

# libFuzzer targets for every reader, built with clang, ASan and UBSan, each
# run for FUZZ_SECONDS from the committed seed corpus in fuzz/corpus/NAME
# (new inputs go to build-fuzz/corpus/NAME; crashes to build-fuzz/).
FUZZ_SECONDS ?= 60
FUZZ_SRC     := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_BINS    := $(FUZZ_SRC:fuzz/%.c=build-fuzz/%)
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all

fuzz-build:
	@rm -f $(FUZZ_BINS)
	$(MAKE) BUILD=build-fuzz CC=clang OPT=-O1 EXTRA_CFLAGS="$(FUZZ_SAN) -fsanitize=fuzzer-no-link $(CLANG_O1)" \
	        EXTRA_LDFLAGS="$(FUZZ_SAN)" build-fuzz/libnabla.a
	$(MAKE) $(FUZZ_BINS)

build-fuzz/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_common.h
	clang -std=c11 -g -O1 -Iinclude -fopenmp $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $< build-fuzz/libnabla.a $(LDLIBS)

fuzz: fuzz-build
	@set -e; for bin in $(FUZZ_BINS); do \
	    name=$${bin#build-fuzz/fuzz_}; mkdir -p build-fuzz/corpus/$$name; \
	    echo "fuzzing $$name for $(FUZZ_SECONDS) s"; \
	    if ! $$bin -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -artifact_prefix=build-fuzz/$$name- \
	          build-fuzz/corpus/$$name fuzz/corpus/$$name > build-fuzz/$$name.log 2>&1; then \
	        tail -n 60 build-fuzz/$$name.log; echo "fuzz: $$name found a failure"; exit 1; fi; \
	    grep -E 'stat::number_of_executed_units' build-fuzz/$$name.log; \
	done; echo "fuzz: $(words $(FUZZ_BINS)) passed, 0 failed"

arch:
	@echo "$(ARCH): $(ISA_TARGETS)"

# The pkg-config names of what the library links (with MPI, ompi-c), for
# scripts that link libnabla.a by hand (tests/tutorial_check.sh).
pkg-deps:
	@echo $(PKG_DEPS)

# Cross-build for arm64 and run the suite under qemu (scripts/test-arm64.sh).
test-arm64:
	sh scripts/test-arm64.sh

# ---- install -----------------------------------------------------------------
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
PCDIR      ?= $(LIBDIR)/pkgconfig
INSTALLED  := $(BINDIR)/nabla $(LIBDIR)/libnabla.a $(LIBDIR)/libnabla.so.$(VERSION) \
              $(LIBDIR)/$(SONAME) $(LIBDIR)/libnabla.so $(INCLUDEDIR)/nabla.h \
              $(PCDIR)/nabla.pc $(MANDIR)/man1/nabla.1

# nabla.pc is written for the PREFIX of each install. The OpenMP runtime is a
# compiler flag, not a pkg-config package, so it goes in Libs.private.
install: $(BUILD)/libnabla.a $(BUILD)/libnabla.so $(BUILD)/nabla
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) \
	    $(DESTDIR)$(PCDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 755 $(BUILD)/nabla $(DESTDIR)$(BINDIR)/nabla
	install -m 644 $(BUILD)/libnabla.a $(DESTDIR)$(LIBDIR)/libnabla.a
	install -m 755 $(BUILD)/libnabla.so $(DESTDIR)$(LIBDIR)/libnabla.so.$(VERSION)
	ln -sf libnabla.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libnabla.so
	install -m 644 include/nabla.h $(DESTDIR)$(INCLUDEDIR)/nabla.h
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' 'includedir=$(INCLUDEDIR)' '' \
	    'Name: nabla' 'Description: C11 deep-learning library: autodiff graphs, conv nets, optimizers' \
	    'Version: $(VERSION)' 'Requires.private: $(PKG_DEPS)' 'Cflags: -I$${includedir}' \
	    'Libs: -L$${libdir} -lnabla' 'Libs.private: -lm -fopenmp' > $(DESTDIR)$(PCDIR)/nabla.pc
	sed '1s/"nabla [^"]*"/"nabla $(VERSION)"/' docs/nabla.1 > $(DESTDIR)$(MANDIR)/man1/nabla.1

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))

clean:
	rm -rf build build-san build-fuzz build-arm64 build-arm64-clang

.PHONY: all tests test sanitize check clean fuzz fuzz-build install uninstall arch pkg-deps test-arm64
.SECONDARY:
