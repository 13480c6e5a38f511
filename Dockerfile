# One image for every statelab subcommand. Built by users (`docker build -t statelab:0.1.0 .`);
# the project's CI does not build images.

FROM rust:1.95-alpine3.22 AS build
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY templates ./templates
COPY migrations ./migrations
COPY static ./static
# The dist profile (Cargo.toml): fat LTO, one codegen unit; slower to build, a smaller binary.
RUN cargo build --profile dist --locked && cp target/dist/statelab /statelab

FROM alpine:3.22
# curl, sh, cat and nslookup (busybox) are there for the labs' `kubectl exec` commands.
RUN apk add --no-cache curl ca-certificates tzdata \
    && addgroup -g 10001 statelab && adduser -D -H -u 10001 -G statelab statelab \
    && mkdir /data && chown 10001:10001 /data
COPY --from=build /statelab /usr/local/bin/statelab
ENV DATA_DIR=/data
VOLUME ["/data"]
USER 10001:10001
EXPOSE 8000 8080
ENTRYPOINT ["statelab"]
CMD ["guestbook"]
