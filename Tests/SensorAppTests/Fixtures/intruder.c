/*
 * intruder.c - attacker behaviours that BusyBox cannot produce, for the signature-rule tests
 * (SignatureRulesInContainersPartBTests). The test compiles it with `cc -static -O2` at test time and runs
 * the same binary in a runc container and on the host.
 *
 *   intruder memfd-exec FILE ARGV0 [ARGS...]  copy FILE into a memfd and fexecve it (fileless exec)
 *   intruder ptrace-attach                     fork a child, PTRACE_ATTACH to it, detach, kill it
 *   intruder mem-write                         fork a child, patch its memory through /proc/<child>/mem
 *   intruder setns NSFILE                      join the namespace NSFILE names (e.g. /proc/1/ns/uts)
 *   intruder mount FSTYPE DIR                  mount a FSTYPE file system on DIR, then unmount it
 *   intruder bpf                               create a BPF array map with bpf(2)
 *
 * Each mode prints one line saying what happened (or the errno), so a failing test shows whether the kernel
 * refused the call; the sensor sees the attempt either way.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int fail(const char *what)
{
	printf("%s failed: %s\n", what, strerror(errno));
	return 1;
}

static int memfd_exec(int argc, char **argv)
{
	char buffer[65536];
	ssize_t n;
	int in, fd;

	if (argc < 4) {
		fprintf(stderr, "usage: intruder memfd-exec FILE ARGV0 [ARGS...]\n");
		return 2;
	}
	in = open(argv[2], O_RDONLY);
	if (in < 0)
		return fail("open");
	fd = memfd_create("patrol-payload", 0);
	if (fd < 0)
		return fail("memfd_create");
	while ((n = read(in, buffer, sizeof(buffer))) > 0)
		if (write(fd, buffer, n) != n)
			return fail("write");
	close(in);
	fflush(stdout);
	fexecve(fd, argv + 3, (char *[]){ "PATH=/usr/bin:/bin", NULL });
	return fail("fexecve");
}

/* A child that waits to be killed; returns its pid. */
static pid_t sleeper(void)
{
	pid_t child = fork();

	if (child == 0) {
		for (;;)
			pause();
	}
	return child;
}

static int ptrace_attach(void)
{
	pid_t child = sleeper();
	int status;

	if (child < 0)
		return fail("fork");
	if (ptrace(PTRACE_ATTACH, child, NULL, NULL) != 0) {
		kill(child, SIGKILL);
		return fail("ptrace(PTRACE_ATTACH)");
	}
	waitpid(child, &status, 0);
	ptrace(PTRACE_DETACH, child, NULL, NULL);
	kill(child, SIGKILL);
	waitpid(child, &status, 0);
	printf("attached to %d\n", (int)child);
	return 0;
}

static volatile int patched;

static int mem_write(void)
{
	char path[64];
	int one = 1, status, fd;
	pid_t child = fork();

	if (child < 0)
		return fail("fork");
	if (child == 0) {
		/* Wait up to 10 s for the parent to set `patched` in this process's memory. */
		for (int i = 0; i < 1000 && !patched; i++)
			usleep(10000);
		_exit(patched ? 0 : 1);
	}
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)child);
	fd = open(path, O_RDWR);
	if (fd < 0) {
		kill(child, SIGKILL);
		waitpid(child, &status, 0);
		return fail("open /proc/<pid>/mem");
	}
	if (pwrite(fd, &one, sizeof(one), (off_t)(unsigned long)&patched) != sizeof(one)) {
		kill(child, SIGKILL);
		waitpid(child, &status, 0);
		return fail("pwrite /proc/<pid>/mem");
	}
	close(fd);
	waitpid(child, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		printf("the child did not see the patch\n");
		return 1;
	}
	printf("patched the memory of %d\n", (int)child);
	return 0;
}

static int join_namespace(const char *file)
{
	int fd = open(file, O_RDONLY);

	if (fd < 0)
		return fail("open namespace");
	if (setns(fd, 0) != 0)
		return fail("setns");
	printf("joined %s\n", file);
	return 0;
}

static int mount_fs(const char *fstype, const char *dir)
{
	if (mount(fstype, dir, fstype, 0, NULL) != 0)
		return fail("mount");
	printf("mounted %s on %s\n", fstype, dir);
	if (umount2(dir, MNT_DETACH) != 0)
		return fail("umount");
	return 0;
}

static int bpf_map(void)
{
	union bpf_attr attr;
	long fd;

	memset(&attr, 0, sizeof(attr));
	attr.map_type = BPF_MAP_TYPE_ARRAY;
	attr.key_size = 4;
	attr.value_size = 4;
	attr.max_entries = 1;
	fd = syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr));
	if (fd < 0)
		return fail("bpf(BPF_MAP_CREATE)");
	printf("created BPF map fd %ld\n", fd);
	close((int)fd);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 2 && strcmp(argv[1], "memfd-exec") == 0)
		return memfd_exec(argc, argv);
	if (argc == 2 && strcmp(argv[1], "ptrace-attach") == 0)
		return ptrace_attach();
	if (argc == 2 && strcmp(argv[1], "mem-write") == 0)
		return mem_write();
	if (argc == 3 && strcmp(argv[1], "setns") == 0)
		return join_namespace(argv[2]);
	if (argc == 4 && strcmp(argv[1], "mount") == 0)
		return mount_fs(argv[2], argv[3]);
	if (argc == 2 && strcmp(argv[1], "bpf") == 0)
		return bpf_map();
	fprintf(stderr, "usage: intruder memfd-exec|ptrace-attach|mem-write|setns|mount|bpf ...\n");
	return 2;
}
