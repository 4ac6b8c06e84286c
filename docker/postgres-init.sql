-- The Optuna study storage's own database (REGTUNER_STORAGE=postgresql+psycopg2://mlflow:...@postgres/studies):
-- Optuna and MLflow both keep an alembic_version table, so they cannot share one database.
CREATE DATABASE studies OWNER mlflow;
