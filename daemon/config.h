/* SPDX-License-Identifier: MIT */
/*
 * daemon/config.h - uzswapd's settings: defaults, the ini file, and back.
 *
 * struct uzd_config holds every setting fully resolved: sizes in bytes
 * (percentages of RAM already converted with the RAM size given), the codec
 * as a struct uzc_spec, the allocator as a name the zpool registry knows.
 * Nothing else in the daemon parses text.  etc/uzswapd.conf documents each
 * key with its default and meaning.
 *
 * Errors are negative errno values.  A load that fails writes exactly one
 * message, "PATH:LINE: what is wrong", and leaves *cfg as it was.
 */
#ifndef UZSWAP_DAEMON_CONFIG_H
#define UZSWAP_DAEMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "compress/codec.h"

#define UZD_DEFAULT_SOCKET "/run/uzswap/uzswapd.sock"
/* sizeof(((struct sockaddr_un *)0)->sun_path): the path and its NUL. */
#define UZD_SOCKET_PATH_MAX 108
/* The backing file, or the directory of an unnamed one; a line holds "path = " and it. */
#define UZD_BACKING_PATH_MAX 192
#define UZD_DEFAULT_BACKING "/var/lib/uzswap/"
/* 16 ten-digit uids still fit on one ini line (INI_MAX_LINE, 200). */
#define UZD_MAX_ALLOW_UIDS 16

enum uzd_log_level {
	UZD_LOG_ERROR,
	UZD_LOG_WARN,
	UZD_LOG_INFO,
	UZD_LOG_DEBUG,
};

/*
 * How reclaim picks victims.  WORKINGSET: in fault-in order, protecting
 * pages that refaulted within a short distance or were seen touched by
 * access sampling (daemon/reclaim.c);
 * FIFO: in fault-in order, nothing else (kept to measure the other against).
 */
enum uzd_reclaim_policy {
	UZD_POLICY_WORKINGSET,
	UZD_POLICY_FIFO,
};

/*
 * Invariants after uzd_config_defaults() or a successful uzd_config_load():
 * low_watermark <= high_watermark, client_min_resident <=
 * client_max_resident <= max_resident, and every field within the range
 * etc/uzswapd.conf gives for its key.
 */
struct uzd_config {
	/* [daemon] */
	char socket[UZD_SOCKET_PATH_MAX]; /* absolute path, NUL-terminated */
	mode_t socket_mode;		  /* permission bits only, 0..0777 */
	unsigned int fault_threads;	  /* 1..64 */
	enum uzd_log_level log_level;

	/* [clients] */
	bool allow_all_uids;		      /* "*": allow_uids[] is then empty */
	unsigned int n_allow_uids;	      /* entries used in allow_uids[] */
	uid_t allow_uids[UZD_MAX_ALLOW_UIDS]; /* distinct, in file order */
	unsigned int n_allow_gids;	      /* entries used in allow_gids[] */
	gid_t allow_gids[UZD_MAX_ALLOW_UIDS]; /* allow_groups: distinct, in file order */
	unsigned int max_clients;	      /* connected at once */
	bool admin_group_set;		      /* admin_group names a group (else "none") */
	gid_t admin_gid;		      /* its members may use admin commands, as root */
	/* quotas (daemon/quota.h), each for every uid, root's included */
	unsigned int uid_max_clients;	  /* one uid's clients at once */
	unsigned int uid_max_connections; /* one uid's connections, HELLO said or not */
	/* The two above are defaults derived from max_clients (the file set neither). */
	bool uid_clients_derived, uid_connections_derived;
	unsigned int client_max_regions; /* regions of one client */
	unsigned int uid_max_regions;	 /* regions of one uid's clients together */
	uint64_t client_max_managed;	 /* bytes of regions of one client */
	uint64_t uid_max_managed;	 /* bytes of regions of one uid's clients together */

	/* [budget] all in bytes; watermarks in percent of a budget */
	uint64_t max_resident;	      /* all managed memory resident at most */
	uint64_t client_max_resident; /* default per-client budget */
	uint64_t uid_max_resident;    /* one uid's clients together keep resident at most */
	unsigned int high_watermark;  /* reclaim starts here, 50..100 */
	unsigned int low_watermark;   /* and evicts down to here, 10..high */
	uint64_t client_min_resident; /* floor under system pressure */
	unsigned int throttle_above;  /* % of a budget past which faults wait; 0: never */

	/* [pressure] */
	unsigned int psi_some_avg10_centi; /* hundredths of a percent; 0: off */
	uint64_t min_available;		   /* bytes of MemAvailable; 0: off */
	unsigned int interval_ms;	   /* how often pressure is read */

	/* [compress] */
	struct uzc_spec codec;	     /* level resolved: never "0 = default" */
	unsigned int max_compressed; /* longer pages are stored raw, 64..4096 */

	/* [pool] */
	const char *allocator;	       /* a zpool driver's name, owned by the registry */
	uint64_t pool_max_size;	       /* bytes */
	unsigned int accept_threshold; /* % of pool_max_size: full until below it, 50..100 */

	/* [backing] */
	bool writeback;				 /* the backing file tier is on */
	char backing_path[UZD_BACKING_PATH_MAX]; /* absolute; a directory if it ends with / */
	uint64_t backing_max_size;		 /* bytes of records at most */

	/* [fault] */
	unsigned int page_cluster; /* restore 2^N neighbours with a fault, 0..5 */
	unsigned int busy_poll_us; /* a fault thread polls this long before it sleeps */

	/* [reclaim] */
	enum uzd_reclaim_policy policy;
	int reclaim_nice;	 /* the reclaim thread's nice value, -20..19 */
	unsigned int sample_pct; /* % of a budget kept zapped for access sampling; 0: off */
	/* % of sampled pages found touched at which every batch is sampled; 0: always */
	unsigned int sample_touched_pct;
};

/* Fill @cfg with the defaults for a machine with @ram_bytes of RAM. */
void uzd_config_defaults(struct uzd_config *cfg, uint64_t ram_bytes);

/*
 * Read the ini file @path: keys absent from it take their defaults.  On
 * success fills *@cfg and returns 0.  Otherwise *@cfg is untouched, @err
 * (may be NULL) holds one message and the return is -EINVAL for anything
 * wrong inside the file ("PATH:LINE: ...") or -errno when it cannot be
 * read ("PATH: strerror").
 */
int uzd_config_load(const char *path, uint64_t ram_bytes, struct uzd_config *cfg, char *err,
		    size_t errlen);

/*
 * For a reload, which keeps the running max_clients (a FIXED key): the
 * defaults @cfg derived from the file's max_clients are derived again from
 * @max_clients, and a uid_max_clients the file set must not be above it.
 * 0, or -EINVAL with @err saying what is wrong.
 */
int uzd_config_refit_clients(struct uzd_config *cfg, unsigned int max_clients, char *err,
			     size_t errlen);

/*
 * Parse a size: a decimal integer with an optional binary suffix (K, M, G,
 * T or KiB, MiB, GiB, TiB; 1024-based), or, when @allow_percent, "N%" of
 * @ram_bytes with 0 < N <= 100.  -EINVAL for anything else (signs, spaces,
 * junk, empty, a percentage when not allowed); -ERANGE when the value does
 * not fit in 64 bits or N is out of range.
 */
int uzd_config_parse_size(const char *s, uint64_t ram_bytes, bool allow_percent, uint64_t *out);

/*
 * Write @cfg as an ini file that uzd_config_load() reads back into the same
 * struct (given the same RAM size).  -EINVAL when a string setting cannot
 * be written so that it reads back the same; -EIO or -errno when writing
 * fails.
 */
int uzd_config_dump(const struct uzd_config *cfg, FILE *f);

/*
 * A reload's view of the keys (daemon/reload.c).  uzd_config_diff() calls
 * @fn (may be NULL) for every key whose value differs between @a and @b,
 * in file order, with its id, its section and name, and whether a running
 * daemon can take a new value (live; etc/uzswapd.conf and uzswapd.conf(5)
 * say which); it returns how many differ.  uzd_config_copy_key() gives
 * @dst the value @src has for key @id, and uzd_config_key_id() finds a
 * key's id (-1: no such key).
 */
typedef void (*uzd_config_diff_fn)(void *arg, int id, const char *section, const char *name,
				   bool live);
unsigned int uzd_config_diff(const struct uzd_config *a, const struct uzd_config *b,
			     uzd_config_diff_fn fn, void *arg);
void uzd_config_copy_key(struct uzd_config *dst, const struct uzd_config *src, int id);
int uzd_config_key_id(const char *section, const char *name);

#endif /* UZSWAP_DAEMON_CONFIG_H */
