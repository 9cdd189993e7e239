# One image for every kassa service (stream job, daily scheduler, API); the command picks one.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml constraints.txt README.md ./
COPY common ./common
COPY storage ./storage
COPY jobs ./jobs
COPY producers ./producers
COPY services ./services
COPY cli ./cli
COPY api ./api
RUN pip install -c constraints.txt . && useradd --create-home kassa && mkdir /data \
    && chown kassa /data

USER kassa
ENV KASSA_DATA_DIR=/data \
    MALLOC_ARENA_MAX=2
ENTRYPOINT ["kassa"]
CMD ["--help"]
