"""calls.ring_through: the attempt to put the caller through to the owner, as summary.json says"""

import sqlalchemy as sa
from alembic import op

revision = '0004_ring_through'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ring_through', sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_column('ring_through')
