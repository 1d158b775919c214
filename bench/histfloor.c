/* The floor of the run history's cost, in C without Lua: the SQLite writes that
 * recording a run takes (hplua's history does at least these), timed in one process.
 *   histfloor DB REPORT N   -> "<end seconds> <total seconds>"
 * The run's start committed; N test rows committed in batches (hplua's recorder does
 * this beside the run); then the run's end with REPORT (a JSON report file's text)
 * committed with synchronous = FULL: the part that cannot overlap the run, since a
 * finished hplua has its run recorded. DB should not exist (a fresh history). */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "histfloor: %s: %s\n", sql, err);
        exit(1);
    }
}

static void step(sqlite3_stmt *st)
{
    if (sqlite3_step(st) != SQLITE_DONE) {
        fprintf(stderr, "histfloor: %s\n", sqlite3_errmsg(sqlite3_db_handle(st)));
        exit(1);
    }
    sqlite3_reset(st);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: histfloor DB REPORT N\n");
        return 2;
    }
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    char *report = malloc((size_t)size + 1);
    if (!report || fread(report, 1, (size_t)size, f) != (size_t)size)
        return 1;
    fclose(f);
    int n = atoi(argv[3]);

    double t0 = now();
    sqlite3 *db;
    if (sqlite3_open(argv[1], &db) != SQLITE_OK)
        return 1;
    exec(db, "PRAGMA journal_mode = WAL");
    exec(db, "PRAGMA synchronous = NORMAL");
    exec(db, "CREATE TABLE runs (run_id TEXT PRIMARY KEY, status TEXT, report TEXT)");
    exec(db, "CREATE TABLE tests (run_id TEXT, seq INTEGER, test_id TEXT, status TEXT, duration REAL, "
             "PRIMARY KEY (run_id, seq))");
    const char *id = "00000000-0000-4000-8000-000000000000";
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "INSERT INTO runs (run_id, status) VALUES (?, 'running')", -1, &st, NULL);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    step(st);
    sqlite3_finalize(st);
    sqlite3_prepare_v2(db, "INSERT INTO tests VALUES (?, ?, ?, 'passed', 0.00003)", -1, &st, NULL);
    for (int i = 0; i < n;) {
        exec(db, "BEGIN");
        for (int k = 0; k < 400 && i < n; k++, i++) {
            char test[64];
            snprintf(test, sizeof test, "trivial::t%d", i + 1);
            sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
            sqlite3_bind_int(st, 2, i + 1);
            sqlite3_bind_text(st, 3, test, -1, SQLITE_TRANSIENT);
            step(st);
        }
        exec(db, "COMMIT");
    }
    sqlite3_finalize(st);

    double t1 = now();
    exec(db, "PRAGMA synchronous = FULL");
    sqlite3_prepare_v2(db, "UPDATE runs SET status = 'passed', report = ? WHERE run_id = ?", -1, &st, NULL);
    sqlite3_bind_text(st, 1, report, (int)size, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    step(st);
    sqlite3_finalize(st);
    double t2 = now();
    sqlite3_close(db);
    printf("%.6f %.6f\n", t2 - t1, now() - t0);
    free(report);
    return 0;
}
