# One image for every proact service; the service is chosen by the command, a module of the
# catalogue (shared/catalogue.py: python -m shared.catalogue lists them, with their ports):
#   docker run proact services.engine      (or services.projector, services.dispatcher, ...)
# Packages come from uv.lock (uv sync --locked), as in `make`. Build arguments:
#   EXTRAS=trainer   the trainer's image, with matplotlib for the model report's plots
#                    (`make image` builds both: proact and proact-trainer)
FROM python:3.11-slim AS build
ARG EXTRAS=""
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
ENV UV_PROJECT_ENVIRONMENT=/opt/venv UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never \
    UV_NO_CACHE=1
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
# the dependencies first, in their own layer: a change to proact's code does not reinstall them
RUN uv sync --locked --no-install-project --no-editable --python /usr/local/bin/python3 ${EXTRAS:+--extra $EXTRAS}
COPY shared ./shared
COPY services ./services
RUN uv sync --locked --no-editable --python /usr/local/bin/python3 ${EXTRAS:+--extra $EXTRAS}

FROM python:3.11-slim
# the volumes the services write (models, the file outbox) exist and belong to the service's user,
# so a named volume mounted there starts with that owner
RUN groupadd --system --gid 10001 proact && useradd --system --uid 10001 --gid proact --no-create-home proact \
    && mkdir -p /models /outbox && chown 10001:10001 /models /outbox
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY data ./data
# the demo shop, for the compose file's demo (python deploy/demo/shop.py)
COPY deploy/demo ./deploy/demo
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    PROACT_MODEL_DIR=/models PROACT_DISPATCHER_OUTBOX_DIR=/outbox \
    PROACT_STOREFRONT_HTTP_HOST=0.0.0.0 PROACT_ADMIN_HTTP_HOST=0.0.0.0 \
    MPLCONFIGDIR=/tmp/matplotlib
VOLUME ["/models", "/outbox"]
USER 10001:10001
ENTRYPOINT ["python", "-m"]
CMD ["services.storefront"]
