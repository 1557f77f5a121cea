/*
 * Logging to stderr or syslog. The switch and the debug flag are set before
 * any thread starts and only read afterwards.
 */
#include "tpfs/log.h"

#include "tpfs/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static bool use_syslog;
static bool debug_on;
static bool held;
static struct tpfs_buf kept;

void tpfs_log_use_syslog(bool on)
{
	if (on && !use_syslog)
		openlog("tpfs", LOG_PID, LOG_DAEMON);
	else if (!on && use_syslog)
		closelog();
	use_syslog = on;
}

void tpfs_log_hold(void)
{
	held = true;
}

void tpfs_log_release(bool emit)
{
	held = false;
	if (emit && kept.len)
		fputs(kept.data, stderr);
	tpfs_buf_free(&kept);
}

void tpfs_log_set_debug(bool on)
{
	debug_on = on;
}

void tpfs_log(int prio, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	tpfs_log_va(prio, fmt, ap);
	va_end(ap);
}

void tpfs_log_va(int prio, const char *fmt, va_list ap)
{
	if (prio == LOG_DEBUG && !debug_on)
		return;
	char raw[2048], line[2048];
	vsnprintf(raw, sizeof(raw), fmt, ap);
	/* libfuse ends its messages with a newline; one line is enough, and a
	 * name with control bytes in it must not make two (they become %XX). */
	size_t n = strlen(raw);
	while (n && raw[n - 1] == '\n')
		raw[--n] = '\0';
	tpfs_error_escape(line, sizeof(line), raw);
	if (use_syslog) {
		syslog(prio, "%s", line);
		return;
	}
	const char *tag = prio == LOG_WARNING ? "warning: " : "";
	if (held && prio == LOG_WARNING)
		tpfs_buf_printf(&kept, "tpfs: %s%s\n", tag, line);
	else
		fprintf(stderr, "tpfs: %s%s\n", tag, line);
}
