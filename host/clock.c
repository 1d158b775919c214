#include "clock.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

double clock_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double clock_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void clock_iso8601(double wall, char *buf, size_t len)
{
    /* The formatted second is cached: reports format thousands of times a second. */
    static time_t cached_secs = (time_t)-1;
    static char date[32], zone[8];
    time_t secs = (time_t)wall;
    int ms = (int)((wall - (double)secs) * 1000.0);
    if (ms > 999)
        ms = 999;
    if (secs != cached_secs) {
        struct tm tm;
        localtime_r(&secs, &tm);
        strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
        strftime(zone, sizeof zone, "%z", &tm); /* +0000 -> +00:00 */
        cached_secs = secs;
    }
    /* "YYYY-MM-DDTHH:MM:SS" ".mmm" "+HH" ":" "MM" without printf: reports and events
     * stamp every record */
    if (len < 30) { /* a short buffer: the same text, cut */
        char full[64];
        snprintf(full, sizeof full, "%s.%03d%.3s:%.2s", date, ms, zone, zone + 3);
        if (len) {
            size_t n = strlen(full) < len - 1 ? strlen(full) : len - 1;
            memcpy(buf, full, n);
            buf[n] = 0;
        }
        return;
    }
    size_t n = strlen(date);
    memcpy(buf, date, n);
    buf[n++] = '.';
    buf[n++] = (char)('0' + ms / 100);
    buf[n++] = (char)('0' + ms / 10 % 10);
    buf[n++] = (char)('0' + ms % 10);
    memcpy(buf + n, zone, 3);
    n += 3;
    buf[n++] = ':';
    memcpy(buf + n, zone + 3, 2);
    n += 2;
    buf[n] = 0;
}
