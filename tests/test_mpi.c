/* test_mpi.c — data-parallel training under mpirun matches one process,
 * and its faults end the job with a message (tests/mpi_check.sh does the
 * work); the shard arithmetic, and what a build without MPI says. Needs
 * Fashion-MNIST and, for the runs, a build with MPI and Open MPI's mpirun. */
#include "support.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* Shards tile the positions in rank order, sizes differing by at most one;
 * alone (NULL) a process takes everything. */
static void test_shards_tile_the_batch(void **s) {
    (void)s;
    long first, n;
    nb_dist_shard(NULL, 64, &first, &n);
    assert_int_equal(first, 0);
    assert_int_equal(n, 64);
    assert_int_equal(nb_dist_rank(NULL), 0);
    assert_int_equal(nb_dist_size(NULL), 1);
}

static void test_without_mpi_says_how_to_get_it(void **s) {
    (void)s;
    if (nb_dist_available()) skip();
    assert_null(nb_dist_init(NULL, NULL));
    assert_non_null(strstr(nb_last_error(), "apt-get install libopenmpi-dev openmpi-bin"));
}

/* Run tests/SCRIPT TMPDIR; its exit status, its log printed on failure. */
static int run_check(const char *script) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "sh tests/%s %s >%s/log 2>&1", script, tmpdir, tmpdir);
    int status = system(cmd);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    if (code && code != 77) {
        char log[16384] = "";
        FILE *f = fopen(tmp_path("log"), "r");
        if (f) {
            log[fread(log, 1, sizeof log - 1, f)] = '\0';
            fclose(f);
        }
        print_error("tests/%s failed:\n%s\n", script, log);
    }
    return code;
}

static bool have_mpirun(void) {
    return nb_dist_available() && system("command -v mpirun >/dev/null 2>&1") == 0;
}

static void test_ranks_train_as_one_process(void **s) {
    (void)s;
    if (!have_mpirun()) skip();
    assert_int_equal(run_check("mpi_check.sh"), 0);
}

/* Exit 77: no network namespaces here (not root, or no ip netns). */
static void test_ranks_on_two_hosts_over_tcp(void **s) {
    (void)s;
    if (!have_mpirun()) skip();
    int code = run_check("mpi_hosts_check.sh");
    if (code == 77) skip();
    assert_int_equal(code, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shards_tile_the_batch),
        cmocka_unit_test(test_without_mpi_says_how_to_get_it),
        cmocka_unit_test(test_ranks_train_as_one_process),
        cmocka_unit_test(test_ranks_on_two_hosts_over_tcp),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
