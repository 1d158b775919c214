#include "loop.h"

#include "clock.h"
#include "crossings.h"

#include <string.h>

static proc_engine engine = {.epfd = -1};
static loop_guard guard; /* the guard's hooks (loop_set_guard); any may be NULL */
/* Children with an on_line callback, until their last line is delivered. */
static proc *line_procs;

proc_engine *loop_engine(void) { return &engine; }

void loop_set_guard(const loop_guard *g) { guard = *g; }

static void guard_check(lua_State *L)
{
    if (guard.check)
        guard.check(L);
}

void loop_add_line_reader(proc *p)
{
    p->line_reader = true;
    p->line_next = line_procs;
    line_procs = p;
}

/* Runs on_line callbacks for complete lines (and the last partial line once the
 * child has ended). Raises what a callback raises; the cursor moves first. */
static void deliver_lines(lua_State *L)
{
    for (proc **link = &line_procs; *link;) {
        proc *p = *link;
        if (p->lines_seen < p->out.len && crossing_push_line_callback(L, p)) {
            int fn = lua_gettop(L);
            for (;;) {
                const char *start = p->out.data + p->lines_seen;
                size_t left = p->out.len - p->lines_seen;
                const char *nl = memchr(start, '\n', left);
                size_t len = nl ? (size_t)(nl - start) : left;
                if (!nl && (p->state == PROC_RUNNING || !left))
                    break;
                p->lines_seen += nl ? len + 1 : len;
                lua_pushvalue(L, fn);
                lua_pushlstring(L, start, len);
                lua_call(L, 1, 0);
            }
            lua_settop(L, fn - 1);
        }
        if (p->state != PROC_RUNNING && p->lines_seen == p->out.len) {
            *link = p->line_next; /* all delivered: off the list */
            crossing_forget_line_callback(L, p);
        } else {
            link = &p->line_next;
        }
    }
}

static unsigned long attempt;
static bool in_attempt;

int loop_start(lua_State *L, const proc_spec *s, bool scope_test, proc **out, char *err, size_t errlen)
{
    int rc = proc_start(&engine, s, out, err, errlen);
    if (rc)
        return rc;
    (*out)->scope_test = scope_test && in_attempt;
    (*out)->attempt = attempt;
    if (guard.child_started)
        guard.child_started(); /* its ticks drain the new pipes while test code computes */
    crossing_process_event(L, "process_started", *out, engine.buf_headroom);
    return 0;
}

void loop_begin_attempt(void)
{
    attempt++;
    in_attempt = true;
}

void loop_end_attempt(lua_State *L, double grace)
{
    size_t left = 0;
    for (size_t i = 0; i < engine.running; i++) {
        proc *p = engine.live[i];
        if (in_attempt && p->scope_test && p->attempt == attempt) {
            proc_terminate(&engine, p, grace);
            left++;
        }
    }
    in_attempt = false;
    /* plain engine turns: the attempt is over, no test callback may run now */
    double end = clock_mono() + grace + 5.0;
    while (left && clock_mono() < end) {
        proc_poll(&engine, 0.05, -1, 0, NULL);
        left = 0;
        for (size_t i = 0; i < engine.running; i++)
            left += engine.live[i]->scope_test && engine.live[i]->attempt == attempt;
    }
    loop_announce_ends(L);
}

void loop_announce_ends(lua_State *L)
{
    proc *p;
    while ((p = proc_take_ended(&engine)) != NULL) {
        p->reported = true;
        crossing_process_event(L, "process_ended", p, engine.buf_headroom);
    }
}

bool loop_turn(lua_State *L, double timeout, int fd, short events, short *revents)
{
    guard_check(L);
    double dl = guard.deadline ? guard.deadline() : 0;
    if (dl) {
        double left = dl - clock_mono();
        if (left < 0)
            left = 0;
        if (timeout < 0 || left < timeout)
            timeout = left;
    }
    bool ready = proc_poll(&engine, timeout, fd, events, revents);
    deliver_lines(L);
    loop_announce_ends(L);
    guard_check(L);
    return ready;
}

int loop_wait(lua_State *L, int fd, short events, double timeout)
{
    double end = timeout >= 0 ? clock_mono() + timeout : 0;
    for (;;) { /* at least one turn: a zero wait still serves what is ready */
        double left = timeout >= 0 ? end - clock_mono() : -1;
        short revents = 0;
        if (loop_turn(L, timeout >= 0 && left < 0 ? 0 : left, fd, events, &revents))
            return 1;
        if (timeout >= 0 && clock_mono() >= end)
            return 0;
    }
}

void loop_drain(void) { proc_poll(&engine, 0, -1, 0, NULL); }

bool loop_live(void) { return engine.running > 0; }

bool loop_piped(void) { return engine.piped > 0; }

void loop_shutdown(void) { proc_engine_free(&engine); }
