// exec-load: runs a program at a fixed rate (posix_spawn + reap), for the exec-to-alert latency benchmark.
//
//   exec-load <program> <execs per second> <seconds>
//
// Prints "issued <n> seconds <s>" when done. Spawns are paced against CLOCK_MONOTONIC, so a slow spawn is
// caught up on rather than lowering the rate.
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s <program> <execs per second> <seconds>\n", argv[0]);
		return 2;
	}
	char *program = argv[1];
	double rate = atof(argv[2]), duration = atof(argv[3]);
	char *child_argv[] = { program, NULL };
	double start = now();
	long issued = 0;

	while (now() - start < duration) {
		long due = (long)((now() - start) * rate);

		while (issued < due) {
			pid_t pid;

			if (posix_spawn(&pid, program, NULL, NULL, child_argv, environ) != 0) {
				perror("posix_spawn");
				return 1;
			}
			issued++;
		}
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		struct timespec pause = { 0, 200000 };
		nanosleep(&pause, NULL);
	}
	while (waitpid(-1, NULL, 0) > 0)
		;
	printf("issued %ld seconds %.2f\n", issued, now() - start);
	return 0;
}
