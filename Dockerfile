# One image for every process of the site: web (gunicorn), Celery workers and beat.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DJANGO_SETTINGS_MODULE=recsite.settings DGLBACKEND=pytorch \
    OPENBLAS_NUM_THREADS=1 RECSITE_VAR_DIR=/var/lib/recsite
# mysqlclient builds from source against the MariaDB client headers (it has no wheel).
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc pkg-config libmariadb-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput -v0 \
    && useradd --create-home --uid 1000 recsite \
    && mkdir -p /var/lib/recsite/artifacts && chown -R recsite /var/lib/recsite
USER recsite
EXPOSE 8000
CMD ["gunicorn", "-c", "gunicorn.conf.py", "recsite.wsgi"]
