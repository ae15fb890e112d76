# syntax=docker/dockerfile:1
# drop-operator image: the operator in a virtualenv on a slim Python base, plus the static no-op
# binary that pull pods copy into an emptyDir and run (so images without a shell can be cached).
# Base images are build arguments so that the same file builds against other bases of the same
# Debian release (devtools/image.py builds Debian bases from packages where no public registry is
# reachable). Both must provide Python 3.11 as `python3` / a C compiler with a static libc.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG GCC_IMAGE=gcc:14-bookworm

# --- drop-noop: a static binary with no dependencies on the image it runs in ---------------------
FROM ${GCC_IMAGE} AS noop
WORKDIR /src
COPY hack/noop.c .
RUN gcc -static -Os -s -Wall -Wextra -Werror -o /drop-noop noop.c \
    && /drop-noop --install /tmp/noop-check && /tmp/noop-check

# --- the operator and its dependencies in /opt/venv -----------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# `python3`, not `python`: Debian's own Python has no `python` without python-is-python3.
RUN python3 -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY drop_operator ./drop_operator
# pip and setuptools are only needed to install; without them the image is 26 MB smaller.
RUN /opt/venv/bin/pip install --no-cache-dir . \
    && /opt/venv/bin/pip uninstall --yes pip setuptools \
    && /opt/venv/bin/drop-operator --help >/dev/null

# --- final image: no compiler, no pip cache, non-root ---------------------------------------------
FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="drop-operator" \
      org.opencontainers.image.description="Kubernetes operator that discovers the container images that matter and keeps them warm on cluster nodes" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="drop-operator maintainers"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY --from=build /opt/venv /opt/venv
COPY --from=noop /drop-noop /usr/local/bin/drop-noop
# 65532: the conventional "nonroot" uid; the chart runs the pod with the same ids.
USER 65532:65532
ENTRYPOINT ["drop-operator"]
CMD ["run"]
