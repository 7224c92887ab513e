# The collector's image, with patrolctl beside it (`kubectl exec patrol-collector-0 -- patrolctl ...` talks to the
# admin socket inside the pod). Build from the repository root:
#   docker build -f deploy/images/collector.Dockerfile -t REGISTRY/patrol-collector:VERSION .
# Not built or run in Patrol's CI (no container engine there): docs/deploy.md, "What was not exercised".
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
RUN swift build -c release --static-swift-stdlib --product patrol-collector \
 && swift build -c release --static-swift-stdlib --product patrolctl \
 && install -D -m 0755 .build/release/patrol-collector /out/usr/local/bin/patrol-collector \
 && install -D -m 0755 .build/release/patrolctl /out/usr/local/bin/patrolctl
# The Debian packages of the C libraries both binaries link (the Swift runtime is static).
RUN for b in /out/usr/local/bin/*; do ldd "$b"; done | awk '$3 ~ /^\// {print $3}' | xargs -n1 readlink -f \
      | xargs dpkg -S | cut -d: -f1 | sort -u > /out/runtime-packages \
 && cat /out/runtime-packages

FROM ${RUNTIME_IMAGE}
COPY --from=build /out/runtime-packages /tmp/runtime-packages
RUN apt-get update \
 && xargs apt-get install -y --no-install-recommends ca-certificates < /tmp/runtime-packages \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages \
 && groupadd --system --gid 65532 patrol \
 && useradd --system --uid 65532 --gid 65532 --home-dir /var/lib/patrol --no-create-home patrol \
 && install -d -o 65532 -g 65532 /var/lib/patrol /run/patrol
COPY --from=build /out/usr/local/bin/ /usr/local/bin/
# The shipped rules and default binding; the manifests mount the same files from ConfigMaps under /etc/patrol.
COPY rules/ /usr/share/patrol/rules/
USER 65532:65532
WORKDIR /var/lib/patrol
ENTRYPOINT ["/usr/local/bin/patrol-collector"]
