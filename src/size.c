/*
 * Sizes as people write and read them (see size.h).
 */
#include "tpfs/size.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tpfs_size_parse(const char *s, uint64_t *out)
{
	/* digits, optionally a point and more digits: no sign, hex or exponent */
	size_t len = s ? strspn(s, "0123456789") : 0;
	if (!len)
		return -EINVAL;
	if (s[len] == '.') {
		size_t frac = strspn(s + len + 1, "0123456789");
		if (!frac)
			return -EINVAL;
		len += 1 + frac;
	}
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end != s + len || !isfinite(v))
		return -EINVAL;
	double mul = 1;
	switch (toupper((unsigned char)*end)) {
	case 'K':
		mul = 1024.0;
		end++;
		break;
	case 'M':
		mul = 1024.0 * 1024;
		end++;
		break;
	case 'G':
		mul = 1024.0 * 1024 * 1024;
		end++;
		break;
	case 'T':
		mul = 1024.0 * 1024 * 1024 * 1024;
		end++;
		break;
	default:
		break;
	}
	if (mul > 1 && (end[0] == 'i' || end[0] == 'I'))
		end++;
	if (end[0] == 'B' || end[0] == 'b')
		end++;
	if (*end)
		return -EINVAL;
	double bytes = v * mul;
	if (bytes >= 18446744073709551616.0)
		return -EINVAL;
	*out = (uint64_t)bytes;
	return 0;
}

const char *tpfs_size_format(uint64_t n, char *buf, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	unsigned u = 0;
	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)n);
	else
		snprintf(buf, len, "%.2f %s", v, units[u]);
	return buf;
}

const char *tpfs_size_human(uint64_t n, char *buf, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	unsigned u = 0;
	while (u < 6 && n >= (uint64_t)1 << (10 * (u + 1)))
		u++;
	uint64_t scale = (uint64_t)1 << (10 * u), whole = n / scale, rest = n % scale;
	/* rounded up, in tenths below 10 (rest * 10 stays below 2^64 as
	 * scale is at most 2^60) */
	uint64_t tenths = whole * 10 + (rest * 10 + scale - 1) / scale;
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 " B", n);
	else if (tenths < 100)
		snprintf(buf, len, "%" PRIu64 ".%" PRIu64 " %s", tenths / 10, tenths % 10,
			 units[u]);
	else if (whole + (rest > 0) < 1024)
		snprintf(buf, len, "%" PRIu64 " %s", whole + (rest > 0), units[u]);
	else /* 1024 of a unit, rounded up: one of the next */
		snprintf(buf, len, "1.0 %s", units[u + 1]);
	return buf;
}
