# The Airflow image of docker-compose.yaml: the official image at the pinned version, plus this
# project's pinned requirements (its providers, pyarrow, great-expectations, ...).
FROM apache/airflow:3.3.2-python3.11
COPY requirements.txt /requirements.txt
RUN pip install --no-cache-dir -r /requirements.txt
