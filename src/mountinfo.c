/*
 * What is mounted where (see mountinfo.h).
 */
#include "tpfs/mountinfo.h"

#include <stdio.h>
#include <string.h>

/* mountinfo writes space, tab, newline and backslash as \ooo. */
static void unescape_octal(char *s)
{
	char *out = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

bool tpfs_mountinfo_find(const char *point, struct tpfs_mountinfo *out)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	if (!f)
		return false;
	char line[8192];
	bool found = false;
	while (fgets(line, sizeof(line), f)) {
		char p[4096], d[64], t[64], s[256];
		/* id parent maj:min root point options [tags...] - type source super */
		const char *dash = strstr(line, " - ");
		if (!dash || sscanf(line, "%*s %*s %63s %*s %4095s", d, p) != 2 ||
		    sscanf(dash + 3, "%63s %255s", t, s) != 2)
			continue;
		unescape_octal(p);
		unescape_octal(t);
		unescape_octal(s);
		if (strcmp(p, point) == 0) { /* later lines are mounted on top */
			found = true;
			memcpy(out->dev, d, sizeof(out->dev));
			memcpy(out->type, t, sizeof(out->type));
			memcpy(out->source, s, sizeof(out->source));
		}
	}
	fclose(f);
	return found;
}
