/* SPDX-License-Identifier: MIT */
/*
 * tests/promcheck.c - the Prometheus text format, checked line by line
 * (see promcheck.h for the rules).
 *
 * struct checker walks the text once: fam[] holds every family seen with
 * whether it has had its HELP and TYPE, whether its samples began and
 * whether its group is over (another family's line came after one of its
 * own); series[] holds every sample's canonical form, its name and its
 * labels sorted, to find a series given twice.  Everything is freed
 * before prom_check() returns.  Written from the format's description,
 * not from uzswapctl's code, so that it does not share its mistakes.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/promcheck.h"

#define NAME_MAX_LEN 200
#define MAX_LABELS 16
#define VALUE_MAX_LEN 512

struct family {
	char name[NAME_MAX_LEN];
	bool help, type, counter, started, closed;
};

struct label {
	char name[NAME_MAX_LEN];
	char value[VALUE_MAX_LEN];
};

struct checker {
	struct family *fam;
	size_t nfam, capfam;
	char **series;
	size_t nseries, capseries;
	struct family *last; /* the family of the previous line */
	int line;
	char *why;
	size_t len;
};

__attribute__((format(printf, 2, 3))) static int bad(struct checker *k, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(k->why, k->len, "line %d: ", k->line);

	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < k->len)
		vsnprintf(k->why + n, k->len - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* ---- names, UTF-8 ---- */

static bool name_start(char c, bool metric)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (metric && c == ':');
}

static bool name_char(char c, bool metric)
{
	return name_start(c, metric) || (c >= '0' && c <= '9');
}

/* The name at *@p (a metric name, or a label name) into @out; advances *@p. */
static int take_name(struct checker *k, const char **p, bool metric, char *out)
{
	const char *s = *p;
	size_t n = 0;

	if (!name_start(*s, metric))
		return bad(k, "\"%.20s\" does not start with a valid %s name", s,
			   metric ? "metric" : "label");
	while (name_char(s[n], metric))
		n++;
	if (n >= NAME_MAX_LEN)
		return bad(k, "a name of %zu characters", n);
	memcpy(out, s, n);
	out[n] = '\0';
	*p = s + n;
	return 0;
}

static bool utf8_valid(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		size_t len = c < 0x80		? 1 :
			     (c & 0xe0) == 0xc0 ? 2 :
			     (c & 0xf0) == 0xe0 ? 3 :
			     (c & 0xf8) == 0xf0 ? 4 :
						  0;
		unsigned int cp = len == 1 ? c :
				  len == 2 ? c & 0x1f :
				  len == 3 ? c & 0x0f :
					     c & 0x07;

		if (!len || i + len > n)
			return false;
		for (size_t j = 1; j < len; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
		    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

/* ---- families and series ---- */

static struct family *family_get(struct checker *k, const char *name)
{
	struct family *f;

	for (size_t i = 0; i < k->nfam; i++)
		if (!strcmp(k->fam[i].name, name))
			return &k->fam[i];
	if (k->nfam == k->capfam) {
		size_t cap = k->capfam ? 2 * k->capfam : 64;

		f = realloc(k->fam, cap * sizeof(*f));
		if (!f)
			return NULL;
		/* The last family moves with the array. */
		if (k->last)
			k->last = f + (k->last - k->fam);
		k->fam = f;
		k->capfam = cap;
	}
	f = &k->fam[k->nfam++];
	memset(f, 0, sizeof(*f));
	snprintf(f->name, sizeof(f->name), "%s", name);
	return f;
}

/* A line of family @f: the previous family's group ends; @f's must not have. */
static int family_line(struct checker *k, struct family *f)
{
	if (k->last && k->last != f)
		k->last->closed = true;
	if (f->closed)
		return bad(k, "a line of %s after another family's: its lines are not one group",
			   f->name);
	k->last = f;
	return 0;
}

static int cmp_labels(const void *a, const void *b)
{
	return strcmp(((const struct label *)a)->name, ((const struct label *)b)->name);
}

/* Remember a series; -EEXIST when it was seen. */
static int series_add(struct checker *k, const char *name, struct label *labels, size_t n)
{
	size_t len = strlen(name) + 1;
	char *s, **grown;

	qsort(labels, n, sizeof(*labels), cmp_labels);
	for (size_t i = 0; i < n; i++)
		len += strlen(labels[i].name) + strlen(labels[i].value) + 2;
	s = malloc(len);
	if (!s)
		return -ENOMEM;
	strcpy(s, name);
	for (size_t i = 0; i < n; i++) {
		strcat(s, "\x01");
		strcat(s, labels[i].name);
		strcat(s, "=");
		strcat(s, labels[i].value);
	}
	for (size_t i = 0; i < k->nseries; i++) {
		if (!strcmp(k->series[i], s)) {
			free(s);
			return -EEXIST;
		}
	}
	if (k->nseries == k->capseries) {
		size_t cap = k->capseries ? 2 * k->capseries : 256;

		grown = realloc(k->series, cap * sizeof(*grown));
		if (!grown) {
			free(s);
			return -ENOMEM;
		}
		k->series = grown;
		k->capseries = cap;
	}
	k->series[k->nseries++] = s;
	return 0;
}

/* ---- lines ---- */

static int help_text(struct checker *k, const char *s)
{
	for (; *s; s++) {
		if (*s != '\\')
			continue;
		if (s[1] != '\\' && s[1] != 'n')
			return bad(k,
				   "HELP text has the escape \\%c; only \\\\ and \\n are allowed",
				   s[1] ? s[1] : ' ');
		s++;
	}
	return 0;
}

static int meta_line(struct checker *k, const char *s)
{
	bool help = !strncmp(s, "# HELP ", 7), type = !strncmp(s, "# TYPE ", 7);
	char name[NAME_MAX_LEN];
	struct family *f;
	int r;

	if (!help && !type)
		return 0; /* another comment */
	s += 7;
	r = take_name(k, &s, true, name);
	if (r)
		return r;
	f = family_get(k, name);
	if (!f)
		return -ENOMEM;
	r = family_line(k, f);
	if (r)
		return r;
	if (f->started)
		return bad(k, "%s of %s after its samples", help ? "HELP" : "TYPE", name);
	if (help) {
		if (f->help)
			return bad(k, "a second HELP for %s", name);
		f->help = true;
		if (*s && *s != ' ')
			return bad(k, "junk after the name in HELP %s", name);
		return help_text(k, *s ? s + 1 : s);
	}
	if (f->type)
		return bad(k, "a second TYPE for %s", name);
	f->type = true;
	if (!strcmp(s, " counter"))
		f->counter = true;
	else if (strcmp(s, " gauge"))
		return bad(k, "TYPE %s is \"%s\", expected counter or gauge", name, s);
	if (f->counter && (strlen(name) < 6 || strcmp(name + strlen(name) - 6, "_total")))
		return bad(k, "counter %s does not end in _total", name);
	return 0;
}

/* "name=\"value\"" at *@p into @l, unescaped; advances *@p. */
static int take_label(struct checker *k, const char **p, struct label *l)
{
	const char *s = *p;
	size_t n = 0;
	int r = take_name(k, &s, false, l->name);

	if (r)
		return r;
	if (!strncmp(l->name, "__", 2))
		return bad(k, "label name %s is reserved (starts with __)", l->name);
	if (s[0] != '=' || s[1] != '"')
		return bad(k, "label %s is not followed by =\"", l->name);
	for (s += 2; *s != '"'; s++) {
		char c = *s;

		if (!c)
			return bad(k, "label %s's value has no closing quote", l->name);
		if (c == '\\') {
			if (s[1] != '\\' && s[1] != '"' && s[1] != 'n')
				return bad(k, "label %s's value has the escape \\%c", l->name,
					   s[1] ? s[1] : ' ');
			c = s[1] == 'n' ? '\n' : s[1];
			s++;
		}
		if (n + 1 >= VALUE_MAX_LEN)
			return bad(k, "label %s's value is too long", l->name);
		l->value[n++] = c;
	}
	l->value[n] = '\0';
	if (!utf8_valid((const unsigned char *)l->value, n))
		return bad(k, "label %s's value is not valid UTF-8", l->name);
	*p = s + 1;
	return 0;
}

static int take_labels(struct checker *k, const char **p, struct label *labels, size_t *n)
{
	const char *s = *p + 1;
	int r;

	*n = 0;
	while (*s != '}') {
		if (*n == MAX_LABELS)
			return bad(k, "more than %d labels", MAX_LABELS);
		r = take_label(k, &s, &labels[*n]);
		if (r)
			return r;
		for (size_t i = 0; i < *n; i++)
			if (!strcmp(labels[i].name, labels[*n].name))
				return bad(k, "label %s given twice", labels[i].name);
		(*n)++;
		if (*s == ',')
			s++;
		else if (*s != '}')
			return bad(k, "expected , or } after a label, saw \"%.10s\"", s);
	}
	*p = s + 1;
	return 0;
}

static int sample_value(struct checker *k, const char *s)
{
	char *end;
	double v;

	if (*s != ' ')
		return bad(k, "no space before the value");
	s++;
	if (!*s || *s == ' ')
		return bad(k, "no value");
	v = strtod(s, &end);
	if (*end == ' ')
		return bad(k, "a timestamp or junk after the value: \"%s\"", end);
	if (*end || !isfinite(v))
		return bad(k, "value \"%s\" is not a finite number", s);
	return 0;
}

static int sample_line(struct checker *k, const char *s)
{
	struct label labels[MAX_LABELS];
	char name[NAME_MAX_LEN];
	struct family *f;
	size_t n = 0;
	int r = take_name(k, &s, true, name);

	if (r)
		return r;
	f = family_get(k, name);
	if (!f)
		return -ENOMEM;
	r = family_line(k, f);
	if (r)
		return r;
	if (!f->help || !f->type)
		return bad(k, "a sample of %s before its %s", name, f->help ? "TYPE" : "HELP");
	f->started = true;
	if (*s == '{') {
		r = take_labels(k, &s, labels, &n);
		if (r)
			return r;
	}
	r = sample_value(k, s);
	if (r)
		return r;
	r = series_add(k, name, labels, n);
	if (r == -EEXIST)
		return bad(k, "series %s with these labels appears twice", name);
	return r;
}

static void checker_free(struct checker *k)
{
	for (size_t i = 0; i < k->nseries; i++)
		free(k->series[i]);
	free(k->series);
	free(k->fam);
}

int prom_check(const char *text, char *why, size_t len)
{
	struct checker k = { .why = why, .len = len };
	size_t n = strlen(text);
	int r = 0;

	why[0] = '\0';
	if (!n || text[n - 1] != '\n') {
		snprintf(why, len, "the text does not end with a line feed");
		return -EINVAL;
	}
	for (const char *p = text; *p && !r;) {
		const char *e = strchr(p, '\n');
		char *line = strndup(p, (size_t)(e - p));

		k.line++;
		if (!line)
			r = -ENOMEM;
		else if (line[0] == '#')
			r = meta_line(&k, line);
		else if (line[0])
			r = sample_line(&k, line);
		free(line);
		p = e + 1;
	}
	for (size_t i = 0; !r && i < k.nfam; i++)
		if (!k.fam[i].help || !k.fam[i].type)
			r = bad(&k, "family %s has no %s", k.fam[i].name,
				k.fam[i].help ? "TYPE" : "HELP");
	checker_free(&k);
	return r;
}

int prom_value(const char *text, const char *series, double *v)
{
	size_t n = strlen(series);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (!strncmp(p, series, n) && p[n] == ' ') {
			*v = strtod(p + n + 1, NULL);
			return 0;
		}
	}
	return -ENOENT;
}

static const struct label *find_label(const struct label *labels, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(labels[i].name, name))
			return &labels[i];
	return NULL;
}

int prom_label(const char *text, const char *metric, const char *key, const char *value,
	       const char *label, char *out, size_t len)
{
	size_t n = strlen(metric);
	struct checker k = { .why = (char[128]){ 0 }, .len = 128 };

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		struct label labels[MAX_LABELS];
		const char *s = p + n;
		size_t nl = 0;

		const struct label *m, *l;

		if (strncmp(p, metric, n) || *s != '{')
			continue;
		if (take_labels(&k, &s, labels, &nl))
			return -ENOENT;
		m = key ? find_label(labels, nl, key) : NULL;
		if (key && (!m || strcmp(m->value, value)))
			continue;
		l = find_label(labels, nl, label);
		if (!l)
			return -ENOENT;
		if (strlen(l->value) >= len)
			return -ENAMETOOLONG;
		strcpy(out, l->value);
		return 0;
	}
	return -ENOENT;
}
