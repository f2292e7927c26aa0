# syntax=docker/dockerfile:1
#
# imagebump container image.
#
#   docker build --build-arg VERSION=0.1.0 -t imagebump:0.1.0 .
#
# Stage 1 compiles a release binary; stage 2 is distroless: no shell, no package manager, no
# `git` binary (git2 links libgit2 in), running as uid 65532.
#
# Expected size, under 40 MB uncompressed (about 15 MB compressed) -- reasoned, not measured:
# there is no Docker engine where this file was written.
#   gcr.io/distroless/cc-debian12 is about 23 MB: glibc, libgcc_s, libstdc++, libssl3 and
#   libcrypto3, CA certificates, tzdata.
#   The release binary is stripped (profile.release: strip = true, thin LTO), expected 12-16 MB:
#   libgit2 and libssh2 are vendored and linked statically by their -sys crates, zlib is made
#   static below (LIBZ_SYS_STATIC=1), rustls (reqwest, oci-client) brings its own crypto, and
#   git2's https transport uses the base image's libssl3 dynamically.
# The build fails if the binary needs a shared library the final image does not have.

# The toolchain the project is tested with; Cargo.toml's rust-version is the floor.
ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
# zlib built in (distroless/cc has no libz); libgit2 and libssh2 are vendored by their -sys crates.
ENV LIBZ_SYS_STATIC=1 \
    CARGO_TERM_COLOR=never
# The rust image already has them; named here because openssl-sys (git2 https) needs both.
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*

# 1. Dependencies only: this layer is reused as long as Cargo.toml and Cargo.lock don't change.
#    Dummy targets stand in for the crate (and for any declared [[bench]], which cargo needs to
#    find to read the manifest).
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && for b in $(awk '/^\[\[bench\]\]/{b=1;next} b&&/^name *=/{gsub(/^name *= *"|".*$/,"");print;b=0}' Cargo.toml); do \
      echo 'fn main() {}' > "benches/$b.rs"; done \
 && cargo build --release --locked --bin imagebump \
 && rm -rf src benches

# 2. The sources (.dockerignore keeps target/, .git/, charts/, docs/ out of the context).
#    `touch` makes cargo rebuild the crate itself instead of trusting the dummy's timestamps.
COPY . .
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin imagebump \
 && install -D -m 0755 target/release/imagebump /out/imagebump \
 && /out/imagebump --version \
 && ldd /out/imagebump \
 && ! ldd /out/imagebump | grep -v -E 'linux-vdso|ld-linux|libc\.so|libm\.so|libgcc_s\.so|libssl\.so\.3|libcrypto\.so\.3' \
 && mkdir -p /out/var/lib/imagebump

FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="imagebump" \
      org.opencontainers.image.description="Keeps the container image tags in a GitOps config repo up to date, format-preserving." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/imagebump/imagebump" \
      org.opencontainers.image.url="https://github.com/imagebump/imagebump" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"

COPY --from=builder /out/imagebump /usr/local/bin/imagebump
# The clone cache; in Kubernetes an emptyDir or a PVC is mounted over it.
COPY --from=builder --chown=65532:65532 /out/var/lib/imagebump /var/lib/imagebump

USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/imagebump"]
CMD ["run", "--config", "/etc/imagebump/imagebump.yaml"]
