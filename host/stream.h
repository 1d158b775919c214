/* Serial ports and TCP connections for hp.serial and hp.tcp: the OS side (termios,
 * locks, sockets), plain C without Lua. Functions return 0 or an errno value;
 * nothing here ever waits (every descriptor is non-blocking), the caller waits
 * in hplua's event loop. */
#ifndef HPLUA_STREAM_H
#define HPLUA_STREAM_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

enum { SERIAL_FLOW_NONE, SERIAL_FLOW_RTSCTS, SERIAL_FLOW_XONXOFF };

typedef struct serial_config {
    long baud;      /* 1..4000000; a rate with no B constant uses termios2 BOTHER */
    int data_bits;  /* 5..8 */
    char parity;    /* 'n'one, 'e'ven, 'o'dd, 'm'ark, 's'pace */
    int stop_bits;  /* 1 or 2 */
    int flow;       /* SERIAL_FLOW_* */
} serial_config;

#define SERIAL_MAX_BAUD 4000000L

/* Opens device non-blocking and exclusively (TIOCEXCL and flock LOCK_EX|LOCK_NB),
 * in raw mode with cfg. Returns 0 and the descriptor in *fd, or an errno value:
 * EBUSY when another opener holds it (*holder: its PID, 0 if unknown), ENOTTY when
 * the device is not a terminal, EINVAL when the driver refuses the settings. */
int serial_open(const char *device, const serial_config *cfg, int *fd, long *holder);
/* Turns t into raw mode with cfg; returns 1 when the rate has no B constant (t
 * then carries B38400 and the rate must be set through termios2), else 0. */
struct termios;
int serial_termios(struct termios *t, const serial_config *cfg);
/* Applies cfg to an open terminal (raw mode). */
int serial_configure(int fd, const serial_config *cfg);
/* PID of the process holding device: its flock in /proc/locks (possibly our own
 * PID), else another process with it open (/proc/PID/fd); 0 if none is found. */
long serial_holder(const char *device);
/* Bytes written but not yet sent (TIOCOUTQ; on a socket: not yet acknowledged). */
int stream_outq(int fd, int *bytes);
/* Waits for the serial line to finish sending the last byte (tcdrain); call
 * only once stream_outq says 0, then it does not block. */
void serial_finish(int fd);
/* Drops input the kernel holds for a terminal (tcflush TCIFLUSH); ignored otherwise. */
void serial_flush_input(int fd);
/* Releases the exclusivity and closes. */
void serial_close(int fd);

/* Starts a non-blocking connect to addr: returns 0 (connected), EINPROGRESS (wait
 * for POLLOUT, then tcp_finish), or an errno value. */
int tcp_start(const struct sockaddr *addr, socklen_t len, int *fd);
/* The outcome of a connect that reported POLLOUT: 0 or an errno value. */
int tcp_finish(int fd);

/* read/write once: > 0 bytes, 0 end of stream (the far end closed; a terminal
 * that hung up counts as closed), -EAGAIN, or -errno. A socket is written with
 * MSG_NOSIGNAL (a closed peer gives -EPIPE, never SIGPIPE). */
ssize_t stream_read(int fd, char *buf, size_t n);
ssize_t stream_write(int fd, int is_socket, const char *buf, size_t n);

/* "ENOENT" for ENOENT...; "E<number>" when unknown. */
const char *stream_errno_name(int err, char *buf, size_t len);

#endif
