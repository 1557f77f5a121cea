/*
 * What is mounted where (see mountinfo.h).
 */
#include "tpfs/mountinfo.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

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

/* The fields of a line: id parent maj:min root point options [tags...] -
 * type source super. */
struct fields {
	char *dev, *point, *type, *source, *super;
};

static bool split(char *line, struct fields *f)
{
	char *w[64], *save = NULL;
	size_t n = 0, dash = 6;
	line[strcspn(line, "\n")] = '\0';
	for (char *t = strtok_r(line, " ", &save); t && n < 64; t = strtok_r(NULL, " ", &save))
		w[n++] = t;
	while (dash < n && strcmp(w[dash], "-") != 0)
		dash++;
	if (dash + 2 >= n)
		return false;
	*f = (struct fields){w[2], w[4], w[dash + 1], w[dash + 2],
			     dash + 3 < n ? w[dash + 3] : (char *)""};
	unescape_octal(f->point);
	unescape_octal(f->type);
	unescape_octal(f->source);
	return true;
}

static void describe(const struct fields *f, struct tpfs_mountinfo *out)
{
	snprintf(out->dev, sizeof(out->dev), "%s", f->dev);
	snprintf(out->type, sizeof(out->type), "%s", f->type);
	snprintf(out->source, sizeof(out->source), "%s", f->source);
	out->allow_other = false;
	out->user_id = -1;
	char *save = NULL;
	for (char *o = strtok_r(f->super, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
		uint32_t uid;
		char end;
		if (strcmp(o, "allow_other") == 0)
			out->allow_other = true;
		else if (sscanf(o, "user_id=%" SCNu32 "%c", &uid, &end) == 1)
			out->user_id = uid;
	}
}

bool tpfs_mountinfo_scan(FILE *f, const char *point, const char *dev,
			 struct tpfs_mountinfo *out)
{
	char *line = NULL;
	size_t cap = 0;
	bool found = false;
	while (getline(&line, &cap, f) >= 0) {
		struct fields x;
		if (!split(line, &x) || (point && strcmp(x.point, point) != 0) ||
		    (dev && strcmp(x.dev, dev) != 0))
			continue;
		found = true; /* later lines are mounted on top */
		describe(&x, out);
	}
	free(line);
	return found;
}

static bool find(const char *point, const char *dev, struct tpfs_mountinfo *out)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return false;
	bool found = tpfs_mountinfo_scan(f, point, dev, out);
	fclose(f);
	return found;
}

bool tpfs_mountinfo_find(const char *point, struct tpfs_mountinfo *out)
{
	return find(point, NULL, out);
}

bool tpfs_mountinfo_of_dev(dev_t dev, struct tpfs_mountinfo *out)
{
	char d[64];
	snprintf(d, sizeof(d), "%u:%u", major(dev), minor(dev));
	return find(NULL, d, out);
}
