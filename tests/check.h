/*
 * A minimal test harness: CHECK records a failure and carries on, RUN runs one
 * test function and prints its verdict, and check_done prints the closing
 * "N passed, N failed" line and gives the exit status.
 */
#ifndef TPFS_CHECK_H
#define TPFS_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_passed, check_failed, check_cur_failed;
static const char *check_cur;

#define CHECK(cond)                                                              \
	do {                                                                     \
		if (!(cond)) {                                                   \
			fprintf(stderr, "%s:%d: %s: failed: %s\n", __FILE__,     \
				__LINE__, check_cur, #cond);                     \
			check_cur_failed = 1;                                    \
		}                                                                \
	} while (0)

#define CHECKF(cond, ...)                                                        \
	do {                                                                     \
		if (!(cond)) {                                                   \
			fprintf(stderr, "%s:%d: %s: failed: %s: ", __FILE__,     \
				__LINE__, check_cur, #cond);                     \
			fprintf(stderr, __VA_ARGS__);                            \
			fputc('\n', stderr);                                     \
			check_cur_failed = 1;                                    \
		}                                                                \
	} while (0)

/* s contains frag. */
#define CHECK_CONTAINS(s, frag)                                                  \
	CHECKF(strstr((s), (frag)) != NULL, "'%s' lacks '%s'", (s), (frag))

#define RUN(fn)                                                                  \
	do {                                                                     \
		check_cur = #fn;                                                 \
		check_cur_failed = 0;                                            \
		fn();                                                            \
		if (check_cur_failed)                                            \
			check_failed++;                                          \
		else                                                             \
			check_passed++;                                          \
		printf("%s %s\n", check_cur_failed ? "FAIL" : "ok  ", #fn);      \
		fflush(stdout);                                                  \
	} while (0)

static inline int check_done(void)
{
	printf("%d passed, %d failed\n", check_passed, check_failed);
	return check_failed ? 1 : 0;
}

#endif
