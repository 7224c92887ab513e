// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * openat-load.c - issues openat(2) at a fixed rate for a fixed time, for the capture benchmark.
 *
 * usage: openat-load [--threads N] <rate per second> <seconds>
 *
 * Each of N threads (default 1) issues its share of the rate. Pacing is against CLOCK_MONOTONIC in
 * 10 ms slices: a thread issues the calls due by the end of the slice and then sleeps to it, so the sleep
 * and clock costs are spread over hundreds of calls instead of being paid every millisecond. A thread that
 * falls behind catches up in the next slices (calls due are computed from the start time), but never past
 * the deadline: what was not issued by then is simply not issued, and the achieved rate says so.
 *
 * The paths do not exist, so each call is one sys_enter_openat + sys_exit_openat (ENOENT from a cached
 * negative dentry, the cheapest openat there is) and no close. Paths cycle over 64 names so identical-event
 * folding does not hide the load. Prints the calls issued and the achieved rate (issued / elapsed).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SLICE_NS 10000000LL	/* 10 ms */

static char paths[64][48];
static long long start_ns, deadline_ns;

struct worker {
	pthread_t thread;
	long long rate;		/* this thread's calls per second */
	long long issued;
};

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *run(void *arg)
{
	struct worker *w = arg;
	long long slice, issued = 0;

	for (slice = 1;; slice++) {
		long long due_at = start_ns + slice * SLICE_NS;
		long long target, now;

		if (due_at > deadline_ns)
			due_at = deadline_ns;
		/* calls due by the end of this slice, from the start: catching up is built in */
		target = (long long)((double)w->rate * (double)(due_at - start_ns) / 1e9);
		while (issued < target) {
			int fd = openat(AT_FDCWD, paths[issued & 63], O_RDONLY);

			if (fd >= 0)
				close(fd);
			issued++;
			/* behind schedule: check the deadline now and then, so an overloaded run still ends on time */
			if ((issued & 1023) == 0 && now_ns() >= deadline_ns)
				goto out;
		}
		now = now_ns();
		if (due_at >= deadline_ns || now >= deadline_ns)
			break;
		if (now < due_at) {
			struct timespec ts = { 0, due_at - now };

			nanosleep(&ts, NULL);
		}
	}
out:
	w->issued = issued;
	return NULL;
}

static void usage(const char *name)
{
	fprintf(stderr, "usage: %s [--threads N] <rate per second> <seconds>\n", name);
	exit(2);
}

int main(int argc, char **argv)
{
	struct worker *workers;
	long long rate, seconds, issued = 0, end;
	int i, threads = 1, arg = 1;

	if (argc > arg + 1 && strcmp(argv[arg], "--threads") == 0) {
		threads = atoi(argv[arg + 1]);
		arg += 2;
	}
	if (argc - arg != 2 || threads < 1 || threads > 64)
		usage(argv[0]);
	rate = atoll(argv[arg]);
	seconds = atoll(argv[arg + 1]);
	if (rate < 0 || seconds <= 0)
		usage(argv[0]);
	for (i = 0; i < 64; i++)
		snprintf(paths[i], sizeof(paths[i]), "/tmp/patrol-openat-load-missing-%02d", i);
	workers = calloc(threads, sizeof(*workers));
	if (!workers)
		return 1;
	start_ns = now_ns();
	deadline_ns = start_ns + seconds * 1000000000LL;
	for (i = 0; i < threads; i++) {
		/* the remainder goes to the first threads, so the shares add up to the rate */
		workers[i].rate = rate / threads + (i < rate % threads);
		if (pthread_create(&workers[i].thread, NULL, run, &workers[i]) != 0) {
			perror("pthread_create");
			return 1;
		}
	}
	for (i = 0; i < threads; i++) {
		pthread_join(workers[i].thread, NULL);
		issued += workers[i].issued;
	}
	end = now_ns();
	printf("issued %lld achieved_rate %.0f\n", issued, issued * 1e9 / (double)(end - start_ns));
	return 0;
}
