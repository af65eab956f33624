# Build stage: dev dependencies and the TypeScript compiler.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --ignore-scripts

# Runtime stage: production dependencies and dist/ only, as the non-root user node (uid 1000).
FROM node:24-bookworm-slim
LABEL org.opencontainers.image.title="ftps-gateway" \
      org.opencontainers.image.description="FTPS server for containers, configured by environment variables" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://example.invalid/ftps-gateway"
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
COPY --chown=root:root package.json ./
# /data and /var/lib/ftps-gateway (STATE_DIR: the generated password hash and self-signed pair) belong to node,
# so a fresh named volume on either is writable; /certs is a read-only mount point. The state is no VOLUME of
# the image (an anonymous volume per container would keep nothing): mount a named volume there, as
# docker-compose.yml and the README's docker run line do.
RUN mkdir -p /data /certs /var/lib/ftps-gateway && chown node:node /data /var/lib/ftps-gateway && chmod 700 /var/lib/ftps-gateway
USER node
VOLUME /data
# 8080: HTTP_PORT, /healthz, /readyz and /metrics.
EXPOSE 21 990 8080 30000-30009
# The image has no curl: the sub-command GETs /readyz (the FTP greeting when HTTP_PORT=0) within 5 s.
HEALTHCHECK --interval=30s --timeout=6s --start-period=10s --retries=3 \
  CMD ["node", "/app/dist/main.js", "healthcheck"]
# A small young generation: short-lived TLS buffers are collected sooner, keeping upload RSS growth under
# 64 MiB at no measured throughput cost (bench/throughput.mjs).
ENTRYPOINT ["node", "--max-semi-space-size=4", "/app/dist/main.js"]
CMD ["serve"]
