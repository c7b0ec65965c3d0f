/* SPDX-License-Identifier: MIT */
/*
 * bench/redisgen.c - a redis dataset cut from real text, for
 * bench/vs-kernel --redis.
 *
 *   redisgen --corpus FILE --bytes N [--min LEN] [--max LEN] [--seed S]
 *
 * Writes to stdout, in the redis protocol that `redis-cli --pipe` reads,
 * SET commands for keys "key:%012u" from 0 up (the names redis-benchmark's
 * -r gives its random keys, so that its GETs find these values) until the
 * values add up to N bytes.  Each value is a run of the corpus (the text
 * files of the machine, concatenated by the caller) of a length drawn
 * uniformly from [LEN_MIN, LEN_MAX] (default 200..2000), starting at a
 * random offset, so the dataset compresses like real text does rather than
 * like redis-benchmark's repeated filler.  The last line on stderr says
 * how many keys were written.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "tests/rng.h"

struct gen_opts {
	const char *corpus;
	uint64_t bytes, min, max, seed;
};

static int usage(FILE *f, int status)
{
	fprintf(f, "usage: redisgen --corpus FILE --bytes N [--min LEN] [--max LEN] [--seed S]\n");
	return status;
}

static int parse(int argc, char **argv, struct gen_opts *o)
{
	static const struct option longopts[] = {
		{ "corpus", required_argument, NULL, 'c' },
		{ "bytes", required_argument, NULL, 'b' },
		{ "min", required_argument, NULL, 'm' },
		{ "max", required_argument, NULL, 'M' },
		{ "seed", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*o = (struct gen_opts){ .min = 200, .max = 2000, .seed = 1 };
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		char *end = NULL;
		uint64_t v = 0;

		if (c == 'h')
			exit(usage(stdout, 0));
		if (c == '?')
			return -EINVAL;
		if (c != 'c') {
			v = strtoull(optarg, &end, 10);
			if (!*optarg || *end)
				return -EINVAL;
		}
		switch (c) {
		case 'c':
			o->corpus = optarg;
			break;
		case 'b':
			o->bytes = v;
			break;
		case 'm':
			o->min = v;
			break;
		case 'M':
			o->max = v;
			break;
		case 's':
			o->seed = v;
			break;
		}
	}
	if (optind < argc || !o->corpus || !o->bytes || !o->min || o->min > o->max)
		return -EINVAL;
	return 0;
}

/* One SET in the redis protocol: *3, then each argument as a bulk string. */
static void put_set(FILE *out, uint64_t key, const char *val, size_t len)
{
	char name[32];
	int n = snprintf(name, sizeof(name), "key:%012" PRIu64, key);

	fprintf(out, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%zu\r\n", n, name, len);
	fwrite(val, 1, len, out);
	fputs("\r\n", out);
}

int main(int argc, char **argv)
{
	struct gen_opts o;
	struct stat st;
	struct rng g;
	uint64_t done = 0, keys = 0;
	const char *text;
	int fd;

	if (parse(argc, argv, &o) < 0)
		return usage(stderr, 2);
	fd = open(o.corpus, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "redisgen: %s: %s\n", o.corpus, strerror(errno));
		return 1;
	}
	if ((uint64_t)st.st_size < o.max) {
		fprintf(stderr, "redisgen: %s: %lld bytes, less than one value of %" PRIu64 "\n",
			o.corpus, (long long)st.st_size, o.max);
		return 1;
	}
	text = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (text == MAP_FAILED) {
		fprintf(stderr, "redisgen: mmap %s: %s\n", o.corpus, strerror(errno));
		return 1;
	}
	g.state = o.seed * 0x9e3779b97f4a7c15u + 1;
	while (done < o.bytes) {
		uint64_t len = o.min + rng_next(&g) % (o.max - o.min + 1);
		uint64_t off = rng_next(&g) % ((uint64_t)st.st_size - len + 1);

		put_set(stdout, keys++, text + off, (size_t)len);
		done += len;
	}
	if (fflush(stdout) != 0) {
		fprintf(stderr, "redisgen: writing: %s\n", strerror(errno));
		return 1;
	}
	fprintf(stderr, "redisgen: keys=%" PRIu64 " value_bytes=%" PRIu64 "\n", keys, done);
	return 0;
}
