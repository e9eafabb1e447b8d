# Stand-in for redis:7-alpine: Debian's redis-server, data in /data, open to the network
# when started without a config file (as the official image's entrypoint does).
FROM ewc-standin/debian:bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server redis-tools \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data
COPY redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
WORKDIR /data
LABEL ewc.standin="redis:7-alpine"
EXPOSE 6379
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["redis-server"]
