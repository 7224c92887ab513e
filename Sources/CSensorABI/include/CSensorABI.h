/* Layer-0 C target: the sensor's kernel/user ABI and the embedded BPF object. No Swift. */
#pragma once
#include <stddef.h>
#include "sensor_abi.h"	/* a symlink to bpf/include/sensor_abi.h, the single source of truth */

/*
 * The sensor's BPF object (bpf/build/sensor.bpf.o after llvm-strip -g; BTF and CO-RE
 * relocations kept), embedded at build time by `make sensor-embed` into sensor_object.c.
 * Sets *size and returns the ELF bytes; they live for the whole process.
 */
const unsigned char *patrol_sensor_object(size_t *size);
