"""drop cost_record's (source, charge_period_start) index

Every query that reads ``cost_record`` by charge time (``costs/figures.py``, ``costs/budget.py``,
``rule_context.py``) filters on ``charge_period_start`` alone, which a (source, ...) index cannot
serve; only ``ledger.replace_window`` (API collectors re-reading their last days, a few
thousand lines per source) filters on the source too, and ``ix_cost_record_billing_period``
narrows that to the source. Meanwhile every imported line had to be filed in it at a scattered
place: without it a 1,000,000-line FOCUS import into a store that already holds lines takes
about a quarter less time.

Revision ID: 0005
Revises: auth1
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "auth1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cost_record", schema=None) as batch_op:
        batch_op.drop_index("ix_cost_record_period")


def downgrade() -> None:
    with op.batch_alter_table("cost_record", schema=None) as batch_op:
        batch_op.create_index(
            "ix_cost_record_period", ["source", "charge_period_start"], unique=False
        )
