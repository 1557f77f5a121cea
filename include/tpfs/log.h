/*
 * Logging. Messages go to stderr ("tpfs: ...") until tpfs_log_use_syslog()
 * switches the process to syslog, which the daemon does once it has left the
 * terminal. Thread-safe: each message is written with one call.
 */
#ifndef TPFS_LOG_H
#define TPFS_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <syslog.h>

void tpfs_log_use_syslog(bool on);

/* While held, warnings are kept instead of written; release writes them
 * (emit) or drops them. tpfs_model_open holds them so that a refused model
 * gives one line: the reason. Not for use while threads log. */
void tpfs_log_hold(void);
void tpfs_log_release(bool emit);
void tpfs_log_set_debug(bool on);

/* prio is a syslog priority: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG. */
void tpfs_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tpfs_log_va(int prio, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#endif
