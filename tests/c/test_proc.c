/* Unit tests of the plain-C process engine, without Lua. */
#include "clock.h"
#include "proc.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures, checks;

#define CHECK(cond, ...)                                                                                   \
    do {                                                                                                   \
        checks++;                                                                                          \
        if (!(cond)) {                                                                                     \
            failures++;                                                                                    \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);                       \
            fprintf(stderr, __VA_ARGS__);                                                                  \
            fputc('\n', stderr);                                                                           \
        }                                                                                                  \
    } while (0)

static proc *start(proc_engine *e, const char *name, char *const *argv, const char *in)
{
    char path[4096], err[256];
    proc_spec s = {0};
    proc *p = NULL;
    int rc = proc_resolve(argv[0], getenv("PATH"), path, sizeof path);
    if (rc) {
        fprintf(stderr, "cannot resolve %s: %s\n", argv[0], strerror(rc));
        return NULL;
    }
    s.name = name;
    s.path = path;
    s.argv = argv;
    s.stdin_data = in;
    s.stdin_len = in ? strlen(in) : 0;
    rc = proc_start(e, &s, &p, err, sizeof err);
    if (rc)
        fprintf(stderr, "cannot start %s: %s\n", name, err);
    return p;
}

static void wait_all(proc_engine *e)
{
    double end = clock_mono() + 60;
    while (e->running && clock_mono() < end)
        proc_poll(e, 1.0, -1, 0, NULL);
}

static void test_big_output_both_pipes(void)
{
    proc_engine e;
    proc_engine_init(&e);
    /* 10 MiB of a pattern on stdout and a different one on stderr, interleaved writes. */
    char *argv[] = {"sh", "-c",
                    "head -c 10485760 /dev/zero | tr '\\0' 'a' & head -c 10485760 /dev/zero | tr '\\0' 'b' >&2; wait",
                    NULL};
    proc *p = start(&e, "big", argv, NULL);
    CHECK(p != NULL, "start");
    wait_all(&e);
    CHECK(p->state == PROC_EXITED, "exited");
    CHECK(p->exit_code == 0, "exit code %d", p->exit_code);
    CHECK(p->out.len == 10485760, "stdout %zu bytes", p->out.len);
    CHECK(p->err.len == 10485760, "stderr %zu bytes", p->err.len);
    size_t bad = 0;
    for (size_t i = 0; i < p->out.len; i++)
        bad += p->out.data[i] != 'a';
    for (size_t i = 0; i < p->err.len; i++)
        bad += p->err.data[i] != 'b';
    CHECK(bad == 0, "%zu wrong bytes", bad);
    proc_engine_free(&e);
}

static void test_many_children(void)
{
    proc_engine e;
    proc_engine_init(&e);
    char name[32], code[64];
    int started = 0;
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof name, "c%d", i);
        snprintf(code, sizeof code, "echo child %d; exit %d", i, i % 7);
        char *argv[] = {"sh", "-c", code, NULL};
        started += start(&e, name, argv, NULL) != NULL;
    }
    CHECK(started == 200, "started %d", started);
    wait_all(&e);
    int ok = 0;
    for (int i = 0; i < 200; i++) {
        proc *p = e.procs[i];
        char want[32];
        snprintf(want, sizeof want, "child %d\n", i);
        ok += p->state == PROC_EXITED && p->exit_code == i % 7 && p->out.len == strlen(want) &&
              memcmp(p->out.data, want, p->out.len) == 0;
    }
    CHECK(ok == 200, "%d of 200 children reported correctly", ok);
    proc_engine_free(&e);
}

static void test_signal_and_terminate(void)
{
    proc_engine e;
    proc_engine_init(&e);
    char *killed[] = {"sh", "-c", "kill -KILL $$", NULL};
    char *sleeper[] = {"sleep", "30", NULL};
    char *stubborn[] = {"sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done", NULL};
    proc *k = start(&e, "killed", killed, NULL);
    proc *s = start(&e, "sleeper", sleeper, NULL);
    proc *t = start(&e, "stubborn", stubborn, NULL);
    CHECK(k && s && t, "started");
    while (t->out.len < 6)
        proc_poll(&e, 1.0, -1, 0, NULL);
    double t0 = clock_mono();
    proc_terminate(&e, s, 3.0);
    proc_terminate(&e, t, 0.3);
    wait_all(&e);
    double took = clock_mono() - t0;
    CHECK(k->term_signal == SIGKILL && k->exit_code == -1, "signal %d exit %d", k->term_signal, k->exit_code);
    CHECK(s->term_signal == SIGTERM && s->terminated, "sleeper signal %d", s->term_signal);
    CHECK(t->term_signal == SIGKILL && t->terminated, "stubborn signal %d (TERM ignored, KILL after grace)", t->term_signal);
    CHECK(took < 2.5, "terminate took %.2fs", took);
    proc_engine_free(&e);
}

static void test_stdin_timeout_and_errors(void)
{
    proc_engine e;
    proc_engine_init(&e);
    char *cat[] = {"cat", NULL};
    proc *c = start(&e, "cat", cat, "line one\nline two\n");
    char *sleeper[] = {"sleep", "30", NULL};
    char path[4096], err[256];
    int rc;
    proc_spec s = {.name = "timed", .path = "/bin/sleep", .argv = sleeper, .timeout = 0.2};
    proc *tp = NULL;
    CHECK(proc_start(&e, &s, &tp, err, sizeof err) == 0, "start timed: %s", err);
    wait_all(&e);
    CHECK(c && c->out.len == 18 && memcmp(c->out.data, "line one\nline two\n", 18) == 0, "stdin echoed");
    CHECK(tp && tp->timed_out && tp->term_signal == SIGTERM, "timed out by SIGTERM");
    CHECK(tp && tp->end_mono - tp->start_mono < 2.0, "timeout took %.2fs", tp->end_mono - tp->start_mono);

    CHECK(proc_resolve("no-such-command-hplua", getenv("PATH"), path, sizeof path) == ENOENT, "ENOENT");
    char plain[] = "/tmp/hplua-test-noexec-XXXXXX";
    int fd = mkstemp(plain);
    CHECK(fd >= 0, "mkstemp");
    close(fd);
    rc = proc_resolve(plain, NULL, path, sizeof path);
    CHECK(rc == EACCES, "not executable: %s", strerror(rc));
    unlink(plain);
    proc_spec bad = {.name = "badcwd", .path = "/bin/true", .argv = cat, .cwd = "/no/such/dir"};
    proc *bp = NULL;
    rc = proc_start(&e, &bad, &bp, err, sizeof err);
    CHECK(rc == ENOENT && strstr(err, "chdir") != NULL, "bad cwd: rc %d, %s", rc, err);
    CHECK(bp == NULL && e.n == 2, "failed start leaves nothing behind (%zu procs)", e.n);
    proc_engine_free(&e);
}

int main(void)
{
    proc_global_init();
    test_big_output_both_pipes();
    test_many_children();
    test_signal_and_terminate();
    test_stdin_timeout_and_errors();
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
