"""Runs remember the scheduler working on them (several schedulers share the work), and
scheduled task instances are found by priority without sorting them all.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dag_run") as batch:
        batch.add_column(sa.Column("scheduler_job_id", sa.Integer(), nullable=True))
        batch.create_index(op.f("ix_dag_run_scheduler_job_id"), ["scheduler_job_id"])
    op.create_index(
        "ix_task_instance_state_priority", "task_instance", ["state", "priority_weight"]
    )


def downgrade() -> None:
    op.drop_index("ix_task_instance_state_priority", table_name="task_instance")
    with op.batch_alter_table("dag_run") as batch:
        batch.drop_index(op.f("ix_dag_run_scheduler_job_id"))
        batch.drop_column("scheduler_job_id")
