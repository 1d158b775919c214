/* Time sources: monotonic seconds for durations and deadlines, wall clock for reports. */
#ifndef HPLUA_CLOCK_H
#define HPLUA_CLOCK_H
#include <stddef.h>

double clock_mono(void);
double clock_wall(void);
/* ISO 8601 local time with milliseconds and UTC offset: 2026-11-27T05:35:24.123+00:00 */
void clock_iso8601(double wall, char *buf, size_t len);

#endif
