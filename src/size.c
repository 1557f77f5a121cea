/*
 * Sizes as people write and read them (see size.h).
 */
#include "tpfs/size.h"

#include <ctype.h>
#include <errno.h>
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
