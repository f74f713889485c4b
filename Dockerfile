# One image for web, worker and beat.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN python manage.py collectstatic --noinput
RUN useradd --uid 10001 costapp && chown -R costapp /app
USER costapp
EXPOSE 8000
CMD ["gunicorn", "costapp.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3"]
