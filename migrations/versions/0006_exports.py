"""exports: every export taken from the screen (who, what, when, scope, format, size)

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('exports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.BigInteger(), nullable=False),
    sa.Column('actor', sa.String(length=120), nullable=False),
    sa.Column('panel', sa.String(length=16), nullable=False),
    sa.Column('format', sa.String(length=8), nullable=False),
    sa.Column('scope_code', sa.String(length=32), nullable=False),
    sa.Column('unit_code', sa.String(length=32), nullable=False),
    sa.Column('indicator', sa.String(length=64), nullable=True),
    sa.Column('selection', sa.Text(), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=True),
    sa.Column('bytes', sa.Integer(), nullable=True),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('language', sa.String(length=4), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('exports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exports_at'), ['at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('exports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exports_at'))

    op.drop_table('exports')
