"""run archives, quarantine sources and re-processing outcomes

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('connector_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('archive', sa.String(length=255), nullable=True))
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('reprocessed_at', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('outcome', sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.drop_column('outcome')
        batch_op.drop_column('reprocessed_at')
        batch_op.drop_column('source')
    with op.batch_alter_table('connector_runs', schema=None) as batch_op:
        batch_op.drop_column('archive')
