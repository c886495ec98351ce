"""Example pipelines shipped with Tradewind; the DAG files live in ``dags/``."""
