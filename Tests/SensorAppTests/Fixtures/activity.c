// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * activity.c - compiled by Tests/SensorAppTests at test time. Does, in one process, the things the live
 * capture test expects to see: a TCP connect to a loopback listener and its accept, a DNS query datagram
 * to 127.0.0.1:53, memfd_create, a symlink, and an exec of /bin/true whose stdin is the accepted socket
 * (the shape of a reverse shell). Prints the listener's port and the child's pid.
 *
 * usage: activity <symlink path>
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(addr);
	int listener, client, server, udp, memfd, status;
	pid_t child;
	/* id 0x1234, RD, 1 question: patrol-test.example A IN */
	static const unsigned char query[] = {
		0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		11, 'p', 'a', 't', 'r', 'o', 'l', '-', 't', 'e', 's', 't',
		7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0x00, 0x01, 0x00, 0x01,
	};
	struct sockaddr_in dns = { .sin_family = AF_INET, .sin_port = htons(53),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	if (argc < 2)
		return 2;
	listener = socket(AF_INET, SOCK_STREAM, 0);
	if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof(addr)) || listen(listener, 1) ||
	    getsockname(listener, (struct sockaddr *)&addr, &len))
		return 3;
	client = socket(AF_INET, SOCK_STREAM, 0);
	if (client < 0 || connect(client, (struct sockaddr *)&addr, sizeof(addr)))
		return 4;
	server = accept4(listener, NULL, NULL, 0);
	if (server < 0)
		return 5;
	udp = socket(AF_INET, SOCK_DGRAM, 0);
	if (udp < 0 || sendto(udp, query, sizeof(query), 0, (struct sockaddr *)&dns, sizeof(dns)) < 0)
		return 6;
	memfd = memfd_create("patrol-memfd", MFD_CLOEXEC);
	if (memfd < 0)
		return 7;
	unlink(argv[1]);
	if (symlink("/etc/hostname", argv[1]))
		return 8;
	child = fork();
	if (child == 0) {
		dup2(server, 0);
		execl("/bin/true", "true", (char *)NULL);
		_exit(127);
	}
	if (child < 0 || waitpid(child, &status, 0) != child || status != 0)
		return 9;
	printf("%d %d\n", ntohs(addr.sin_port), (int)child);
	return 0;
}
