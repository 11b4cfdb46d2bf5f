"""indicators: the unit of measure in English too

Webhook payloads carry an alert's indicator as the database knows it (they are sent by a process that has no
catalog at hand): its names were there in both languages, its unit of measure only in Chinese (件/时).

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('indicators', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unit_of_measure_en', sa.String(length=32), nullable=False,
                                      server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('indicators', schema=None) as batch_op:
        batch_op.drop_column('unit_of_measure_en')
