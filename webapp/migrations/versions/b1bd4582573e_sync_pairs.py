"""sync pairs: one row per space paired with a provider room (unique space, unique room email; the pair
goes with its space: ON DELETE CASCADE)

Revision ID: b1bd4582573e
Revises: 26e6c640f7ba
Create Date: 2026-11-23 20:39:52.700131

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b1bd4582573e'
down_revision = '26e6c640f7ba'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('sync_pairs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('venue_id', sa.Integer(), nullable=False),
    sa.Column('space_id', sa.Integer(), nullable=False),
    sa.Column('room_email', sa.String(length=254), nullable=False),
    sa.Column('room_id', sa.String(length=200), nullable=False),
    sa.Column('room_display_name', sa.String(length=200), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('state_detail', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_sync_pairs_created_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['space_id'], ['spaces.id'], name=op.f('fk_sync_pairs_space_id_spaces'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['venue_id'], ['venues.id'], name=op.f('fk_sync_pairs_venue_id_venues'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_pairs')),
    sa.UniqueConstraint('room_email', name=op.f('uq_sync_pairs_room_email')),
    sa.UniqueConstraint('space_id', name=op.f('uq_sync_pairs_space_id'))
    )
    with op.batch_alter_table('sync_pairs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sync_pairs_venue_id'), ['venue_id'], unique=False)



def downgrade():
    with op.batch_alter_table('sync_pairs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sync_pairs_venue_id'))

    op.drop_table('sync_pairs')
