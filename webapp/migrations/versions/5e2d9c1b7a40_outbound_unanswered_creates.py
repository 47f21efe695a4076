"""outbound: where to look for a create whose answer was lost (sync_outbound.create_mailbox/start/end); one
event link per (booking, room, kind)

Revision ID: 5e2d9c1b7a40
Revises: b7e1c4d2a9f3
Create Date: 2026-12-07 21:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5e2d9c1b7a40'
down_revision = 'b7e1c4d2a9f3'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('sync_outbound', schema=None) as batch_op:
        batch_op.add_column(sa.Column('create_mailbox', sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column('create_start', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('create_end', sa.DateTime(), nullable=True))
    with op.batch_alter_table('sync_event_links', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_event_link_booking_room', ['booking_uid', 'room_email', 'kind'])


def downgrade():
    with op.batch_alter_table('sync_event_links', schema=None) as batch_op:
        batch_op.drop_constraint('uq_event_link_booking_room', type_='unique')
    with op.batch_alter_table('sync_outbound', schema=None) as batch_op:
        batch_op.drop_column('create_end')
        batch_op.drop_column('create_start')
        batch_op.drop_column('create_mailbox')
