/*
 * What the libFuzzer targets share: an invariant check that says which
 * invariant broke and on what, then aborts (libFuzzer keeps the input as a
 * crash-* file). A run with -close_fd_mask=2 loses the message but not the
 * stack trace; running the target on the crash file alone shows both.
 */
#ifndef TPFS_FUZZ_H
#define TPFS_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                                    \
	do {                                                                     \
		if (!(cond)) {                                                   \
			fprintf(stderr, "%s:%d: invariant broken: %s: ", __FILE__, \
				__LINE__, #cond);                                \
			fprintf(stderr, __VA_ARGS__);                            \
			fputc('\n', stderr);                                     \
			abort();                                                 \
		}                                                                \
	} while (0)

#endif
