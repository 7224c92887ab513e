// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * openat-load.c - issues openat(2) at a fixed rate for a fixed time, for the capture benchmark.
 *
 * usage: openat-load <rate per second> <seconds>
 *
 * Every millisecond it issues rate/1000 openat calls (the remainder spread over the second) on paths
 * that do not exist, so each call is one sys_enter_openat + sys_exit_openat and no close. Paths cycle
 * over 64 names so identical-event folding does not hide the load. Prints the calls issued and the
 * achieved rate; when the machine cannot keep up the achieved rate is below the target.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	char paths[64][48];
	long long rate, seconds, start, deadline, issued = 0, tick;
	int i;

	if (argc != 3) {
		fprintf(stderr, "usage: %s <rate per second> <seconds>\n", argv[0]);
		return 2;
	}
	rate = atoll(argv[1]);
	seconds = atoll(argv[2]);
	for (i = 0; i < 64; i++)
		snprintf(paths[i], sizeof(paths[i]), "/tmp/patrol-openat-load-missing-%02d", i);
	start = now_ns();
	deadline = start + seconds * 1000000000LL;
	for (tick = 1;; tick++) {
		long long due_at = start + tick * 1000000LL;	/* end of this millisecond */
		long long target = rate * tick / 1000;		/* calls due by then */
		long long now;

		if (due_at > deadline)
			break;
		while (issued < target) {
			int fd = openat(AT_FDCWD, paths[issued & 63], O_RDONLY);

			if (fd >= 0)
				close(fd);
			issued++;
		}
		now = now_ns();
		if (now < due_at) {
			struct timespec ts = { 0, due_at - now };

			nanosleep(&ts, NULL);
		}
	}
	printf("issued %lld achieved_rate %.0f\n", issued, issued * 1e9 / (double)(now_ns() - start));
	return 0;
}
