"""incidents: the index of a connector's incidents covers only the open ones

Its two queries (the open ids a run asks again about, the open and overdue counts per community) read a source's
open incidents only; a partial index serves them as the full (source, status) one did, and a closed incident no
longer costs an index entry (most of a source's incidents are closed).

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

OPEN = "status = 'open'"


def upgrade() -> None:
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_index('ix_incidents_source_status')
    op.create_index('ix_incidents_open_by_source', 'incidents', ['source'], unique=False,
                    sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN))


def downgrade() -> None:
    op.drop_index('ix_incidents_open_by_source', table_name='incidents')
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.create_index('ix_incidents_source_status', ['source', 'status'], unique=False)
