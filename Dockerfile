# One image for every proact service; the service is chosen by the command, a module of the
# catalogue (shared/catalogue.py: python -m shared.catalogue lists them, with their ports):
#   docker run proact services.engine      (or services.projector, services.dispatcher, ...)
FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
RUN pip install .

FROM python:3.11-slim
RUN groupadd --system --gid 10001 proact && useradd --system --uid 10001 --gid proact --no-create-home proact
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY data ./data
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    PROACT_MODEL_DIR=/models PROACT_DISPATCHER_OUTBOX_DIR=/outbox \
    PROACT_STOREFRONT_HTTP_HOST=0.0.0.0 PROACT_ADMIN_HTTP_HOST=0.0.0.0 \
    MPLCONFIGDIR=/tmp/matplotlib
USER 10001:10001
ENTRYPOINT ["python", "-m"]
CMD ["services.storefront"]
