# nocobot's image: a static binary on a small Debian with the database
# clients that local-mode backups need.
#
#   docker build -t nocobot \
#     --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg COMMIT=$(git rev-parse HEAD) \
#     --build-arg DOCKER_GID=$(stat -c %g /var/run/docker.sock) .
#
# Base images are build arguments, so the image also builds where no
# registry can be reached: scripts/image-test imports local bases (a Go
# toolchain with a module proxy on disk, and a Debian root filesystem that
# already holds the clients) and passes them here.
ARG GO_IMAGE=golang:1.26-trixie
ARG RUNTIME_IMAGE=debian:trixie-slim

FROM ${GO_IMAGE} AS build
# The module proxy to download from (file:///… for a proxy on disk);
# empty: Go's default.
ARG GOPROXY
ARG VERSION=dev
ARG COMMIT=
WORKDIR /src
COPY go.mod go.sum ./
RUN GOPROXY="$GOPROXY" go mod download
COPY . .
# -buildvcs=false: the build context has no .git; COMMIT says which commit.
RUN CGO_ENABLED=0 go build -buildvcs=false -trimpath \
      -ldflags "-s -w -X github.com/nocobot/nocobot/internal/buildinfo.version=${VERSION} -X github.com/nocobot/nocobot/internal/buildinfo.commit=${COMMIT}" \
      -o /out/nocobot . \
 && /out/nocobot version

FROM ${RUNTIME_IMAGE}
# The group id of the Docker socket on the host (stat -c %g /var/run/docker.sock):
# the nocobot user is a member of it. At run time `group_add` (compose) or
# `--group-add` (docker run) does the same without rebuilding.
ARG DOCKER_GID=999
ARG NOCOBOT_UID=10001
# Debian's PostgreSQL and MariaDB clients (trixie: PostgreSQL 17, which
# dumps servers up to 17; MariaDB 11.8). A base that already has pg_dump is
# used as it is: that is how an offline build works.
RUN set -eu; \
    if ! command -v pg_dump >/dev/null 2>&1; then \
      apt-get update; \
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        postgresql-client mariadb-client ca-certificates tzdata; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    echo "nocobot:x:${NOCOBOT_UID}:${NOCOBOT_UID}:nocobot:/var/lib/nocobot:/usr/sbin/nologin" >> /etc/passwd; \
    echo "nocobot:x:${NOCOBOT_UID}:" >> /etc/group; \
    if grep -q "^[^:]*:[^:]*:${DOCKER_GID}:" /etc/group; then \
      sed -i -E "s/^([^:]*:[^:]*:${DOCKER_GID}:)(.+)$/\1\2,nocobot/; s/^([^:]*:[^:]*:${DOCKER_GID}:)$/\1nocobot/" /etc/group; \
    else \
      echo "docker:x:${DOCKER_GID}:nocobot" >> /etc/group; \
    fi; \
    mkdir -p /var/lib/nocobot /var/backups/nocobot /etc/nocobot /etc/nginx/maintenance; \
    chown nocobot:nocobot /var/lib/nocobot /var/backups/nocobot /etc/nginx/maintenance
COPY --from=build /out/nocobot /usr/local/bin/nocobot
# Every command finds the configuration without --config, whatever the
# working directory: docker exec <container> nocobot status.
ENV NOCOBOT_CONFIG=/etc/nocobot/nocobot.yaml
USER nocobot
WORKDIR /var/lib/nocobot
VOLUME ["/var/lib/nocobot", "/var/backups/nocobot"]
ENTRYPOINT ["/usr/local/bin/nocobot"]
CMD ["serve", "--config", "/etc/nocobot/nocobot.yaml"]
