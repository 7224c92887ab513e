# The node sensor's image. Build from the repository root:
#   docker build -f deploy/images/sensor.Dockerfile -t REGISTRY/patrol-sensor:VERSION .
# The eBPF object is already inside the binary (Sources/CSensorABI/sensor_object.c, `make sensor-check`), so the
# image needs no clang or kernel headers. Not built or run in Patrol's CI (no container engine there):
# docs/deploy.md, "What was not exercised".
ARG SWIFT_IMAGE=swift:6.1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${SWIFT_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libbpf-dev libelf-dev zlib1g-dev libnng-dev libprotobuf-c-dev \
      libcurl4-openssl-dev libpcre2-dev libclamav-dev libsqlite3-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources Sources
COPY Tests Tests
COPY bpf bpf
RUN swift build -c release --static-swift-stdlib --product patrol-sensor \
 && install -D -m 0755 .build/release/patrol-sensor /out/usr/local/bin/patrol-sensor
# The Debian packages of the C libraries the binary links (the Swift runtime is static): the runtime stage installs
# exactly these, so a new soname in the builder (libclamav11 -> 12) cannot be missed.
RUN ldd /out/usr/local/bin/patrol-sensor | awk '$3 ~ /^\// {print $3}' | xargs -n1 readlink -f \
      | xargs dpkg -S | cut -d: -f1 | sort -u > /out/runtime-packages \
 && cat /out/runtime-packages

FROM ${RUNTIME_IMAGE}
COPY --from=build /out/runtime-packages /tmp/runtime-packages
RUN apt-get update \
 && xargs apt-get install -y --no-install-recommends ca-certificates < /tmp/runtime-packages \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages
COPY --from=build /out/usr/local/bin/patrol-sensor /usr/local/bin/patrol-sensor
# The shipped ClamAV signatures; the manifests mount the same files from a ConfigMap at /etc/patrol/malware.
COPY rules/malware/patrol.ndb rules/malware/patrol.ldb /usr/share/patrol/malware/
# Root, with only the capabilities the DaemonSet adds (BPF, PERFMON, SYS_ADMIN, SYS_RESOURCE): loading eBPF needs
# them and they reach the effective set only for uid 0.
USER 0:0
ENTRYPOINT ["/usr/local/bin/patrol-sensor"]
