/* Unit tests of the plain-C process engine, without Lua. */
#include "clock.h"
#include "orphans.h"
#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures, checks;

#define CHECK(cond, ...)                                                             \
    do {                                                                             \
        checks++;                                                                    \
        if (!(cond)) {                                                               \
            failures++;                                                              \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                            \
            fputc('\n', stderr);                                                     \
        }                                                                            \
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

static proc *start_flags(proc_engine *e, const char *name, const char *script, unsigned flags)
{
    char *argv[] = {"sh", "-c", (char *)script, NULL};
    char err[256];
    proc_spec s = {.name = name, .path = "/bin/sh", .argv = argv, .flags = flags};
    proc *p = NULL;
    if (proc_start(e, &s, &p, err, sizeof err))
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
    /* big buffers start on a huge-page boundary (bigmem.c), so they can get huge pages */
    CHECK(((uintptr_t)p->out.data & ((2u << 20) - 1)) == 0, "stdout buffer at %p", (void *)p->out.data);
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

/* Zombies among this process's children (ended, not reaped). */
static int zombie_children(void)
{
    int n = 0;
    DIR *d = opendir("/proc");
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        char path[300], buf[512];
        if (de->d_name[0] < '1' || de->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = 0;
        char state;
        int ppid;
        const char *rp = strrchr(buf, ')');
        if (rp && sscanf(rp + 1, " %c %d", &state, &ppid) == 2 && state == 'Z' && ppid == (int)getpid())
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

/* With many children alive (70, over proc.c's REAP_EAGER: the walk of wait4(-1) is
 * then rationed), an ended child is still reported at once (its pidfd), and an orphan
 * it leaves to us is reaped. */
static void test_reap_with_many_alive(void)
{
    proc_engine e;
    proc_engine_init(&e);
    char name[32];
    char *sleeper[] = {"sleep", "600", NULL}; /* ended by proc_engine_free */
    int started = 0;
    for (int i = 0; i < 70; i++) {
        snprintf(name, sizeof name, "idle%d", i);
        started += start(&e, name, sleeper, NULL) != NULL;
    }
    CHECK(started == 70, "started %d", started);
    char *leaver[] = {"sh", "-c", "sleep 0.3 & echo left; exit 3", NULL};
    proc *p = start(&e, "leaver", leaver, NULL);
    CHECK(p != NULL, "start leaver");
    double t0 = clock_mono();
    while (p && p->state == PROC_RUNNING && clock_mono() - t0 < 10)
        proc_poll(&e, 1.0, -1, 0, NULL);
    CHECK(p && p->state == PROC_EXITED && p->exit_code == 3, "leaver ended with 3");
    CHECK(clock_mono() - t0 < 2.0, "the end was seen after %.2fs", clock_mono() - t0);
    CHECK(p && p->out.len == 5 && memcmp(p->out.data, "left\n", 5) == 0, "its output");
    CHECK(e.running == 70, "%zu running", e.running);
    /* the orphan (sleep 0.3) ends, sends SIGCHLD, and is reaped by a later turn */
    int zombies = -1;
    t0 = clock_mono();
    while (clock_mono() - t0 < 5.0) {
        proc_poll(&e, 0.1, -1, 0, NULL);
        zombies = zombie_children();
        if (clock_mono() - t0 > 0.5 && zombies == 0)
            break;
    }
    CHECK(zombies == 0, "%d zombie children left", zombies);
    proc_engine_free(&e);
    CHECK(zombie_children() == 0, "zombies after the end");
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
    CHECK(t->term_signal == SIGKILL && t->terminated, "stubborn signal %d (TERM ignored, KILL after grace)",
          t->term_signal);
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

/* A finished child's name can be used again; the name index finds the newest. */
static void test_names_reused(void)
{
    proc_engine e;
    proc_engine_init(&e);
    char *t[] = {"true", NULL};
    proc *a = start(&e, "same", t, NULL);
    wait_all(&e);
    proc *b = start(&e, "same", t, NULL);
    CHECK(a && b && a != b, "started twice");
    CHECK(proc_find(&e, "same") == b, "the newest");
    /* many names: the index grows and keeps them all */
    char name[32];
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "n%d", i);
        start(&e, name, t, NULL);
    }
    wait_all(&e);
    int found = 0;
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "n%d", i);
        proc *p = proc_find(&e, name);
        found += p && strcmp(p->name, name) == 0 && p->state == PROC_EXITED;
    }
    CHECK(found == 300, "%d of 300 found by name", found);
    CHECK(proc_find(&e, "same") == b, "still the newest after growing");
    size_t ended = 0;
    while (proc_take_ended(&e))
        ended++;
    CHECK(ended == 302, "%zu ended children queued", ended);
    proc_engine_free(&e);
}

/* popen's streams: stdout read only as fast as the reader takes it; stdin fed
 * piece by piece and closed. */
static void test_streams(void)
{
    proc_engine e;
    proc_engine_init(&e);
    proc *r = start_flags(&e, "reader", "head -c 3000000 /dev/zero", PROC_STREAM_STDOUT);
    CHECK(r != NULL, "start reader");
    size_t taken = 0, most = 0;
    double end = clock_mono() + 60;
    while ((r->fd_out >= 0 || r->out.len > r->out.off) && clock_mono() < end) {
        proc_poll(&e, 0.5, -1, 0, NULL);
        size_t n = r->out.len - r->out.off;
        if (n > most)
            most = n;
        taken += n;
        proc_stdout_take(&e, r, n);
    }
    CHECK(taken == 3000000, "read %zu bytes", taken);
    CHECK(most <= 65536 + 1048576, "at most %zu bytes waited for the reader", most);
    proc *w = start_flags(&e, "writer", "cat", PROC_STREAM_STDIN);
    CHECK(w != NULL, "start writer");
    for (int i = 0; i < 100; i++) {
        char line[32];
        int n = snprintf(line, sizeof line, "line %d\n", i);
        CHECK(proc_stdin_write(&e, w, line, (size_t)n) == 0, "write %d", i);
        proc_poll(&e, 0, -1, 0, NULL);
    }
    proc_stdin_close(&e, w);
    wait_all(&e);
    CHECK(w->state == PROC_EXITED && w->exit_code == 0, "cat ended");
    CHECK(w->out.lines == 100 && w->out.total == w->out.len, "%zu lines back", w->out.lines);
    CHECK(proc_stdin_write(&e, w, "x", 1) == EPIPE, "writing after the end");
    proc_engine_free(&e);
}

/* The run token is found however large the environment before it. */
static void test_token_in_large_environment(void)
{
    proc_engine e;
    proc_engine_init(&e);
    char *token = malloc(128);
    /* 300,000 bytes; one variable may hold at most 128 KiB */
    char *parts[4];
    for (int i = 0; i < 3; i++) {
        parts[i] = malloc(100016);
        int k = snprintf(parts[i], 32, "FILLER%d=", i);
        memset(parts[i] + k, 'x', 100000);
        parts[i][k + 100000] = 0;
    }
    snprintf(token, 128, "HPLUA_RUNS=other:%s", orphans_token());
    char *envp[] = {parts[0], parts[1], parts[2], token, NULL};
    char *argv[] = {"sleep", "30", NULL};
    proc_spec s = {.name = "bigenv", .path = "/bin/sleep", .argv = argv, .envp = envp};
    proc *p = NULL;
    char err[256];
    CHECK(proc_start(&e, &s, &p, err, sizeof err) == 0, "start: %s", err);
    /* the child's /proc/PID/environ shows its new environment once exec is through:
     * under load that can lag behind proc_start's return by a moment */
    bool has = false;
    for (int i = 0; p && !has && i < 200; i++) {
        has = orphans_environ_has(p->pid, orphans_token());
        if (!has)
            usleep(10000);
    }
    CHECK(has, "token after 300 KB of environment");
    CHECK(p && !orphans_environ_has(p->pid, "hplua-1-2"), "another token is not this one");
    char partial[64];
    snprintf(partial, sizeof partial, "%.*s", (int)strlen(orphans_token()) - 1, orphans_token());
    CHECK(p && !orphans_environ_has(p->pid, partial), "a prefix of the token is not the token");
    proc_engine_free(&e);
    for (int i = 0; i < 3; i++)
        free(parts[i]);
    free(token);
}

/* The sweep repeats until /proc shows no descendant: daemons that keep starting
 * daemons in sessions of their own, and thousands of descendants. */
static void test_sweep(void)
{
    proc_engine e;
    proc_engine_init(&e);
    proc *d = start_flags(&e, "forker",
                          "setsid sh -c 'trap \"\" TERM; while :; do setsid sleep 60 & sleep 0.002; done' "
                          "> /dev/null 2>&1 & sleep 0.3",
                          0);
    CHECK(d != NULL, "start forker");
    wait_all(&e);
    CHECK(orphans_signal(0) > 1, "the forker runs and has started daemons");
    double t0 = clock_mono();
    size_t left = orphans_kill_all(10.0, NULL, NULL);
    CHECK(left == 0 && orphans_signal(0) == 0, "%zu descendants left", left);
    CHECK(clock_mono() - t0 < 5.0, "sweep took %.2fs", clock_mono() - t0);
    proc_engine_free(&e);
}

int main(void)
{
    proc_global_init();
    test_big_output_both_pipes();
    test_many_children();
    test_reap_with_many_alive();
    test_signal_and_terminate();
    test_stdin_timeout_and_errors();
    test_names_reused();
    test_streams();
    test_token_in_large_environment();
    test_sweep();
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
