"""kiosk settings, badge numbers, check-ins and no-shows

Revision ID: b7e1c4d2a9f3
Revises: 70148f74a901
Create Date: 2026-11-24 04:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b7e1c4d2a9f3'
down_revision = '70148f74a901'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('kiosk_checkins',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('booking_id', sa.Integer(), nullable=False),
    sa.Column('occurrence_start', sa.DateTime(), nullable=False),
    sa.Column('space_id', sa.Integer(), nullable=True),
    sa.Column('device_id', sa.Integer(), nullable=True),
    sa.Column('device_name', sa.String(length=120), nullable=False),
    sa.Column('checked_in_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'], name=op.f('fk_kiosk_checkins_booking_id_bookings'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['space_id'], ['spaces.id'], name=op.f('fk_kiosk_checkins_space_id_spaces'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kiosk_checkins')),
    sa.UniqueConstraint('booking_id', 'occurrence_start', name='uq_kiosk_checkins_occurrence')
    )
    with op.batch_alter_table('kiosk_checkins', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_kiosk_checkins_space_id'), ['space_id'], unique=False)

    op.create_table('kiosk_no_shows',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('venue_id', sa.Integer(), nullable=False),
    sa.Column('booking_id', sa.Integer(), nullable=False),
    sa.Column('occurrence_start', sa.DateTime(), nullable=False),
    sa.Column('released_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'], name=op.f('fk_kiosk_no_shows_booking_id_bookings'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['venue_id'], ['venues.id'], name=op.f('fk_kiosk_no_shows_venue_id_venues'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kiosk_no_shows')),
    sa.UniqueConstraint('booking_id', 'occurrence_start', name='uq_kiosk_no_shows_occurrence')
    )
    with op.batch_alter_table('kiosk_no_shows', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_kiosk_no_shows_venue_id'), ['venue_id'], unique=False)

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('badge_number', sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_users_badge_number'), ['badge_number'])

    with op.batch_alter_table('venues', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kiosk_soon_minutes', sa.Integer(), server_default='10', nullable=False))
        batch_op.add_column(sa.Column('kiosk_poll_seconds', sa.Integer(), server_default='10', nullable=False))
        batch_op.add_column(sa.Column('kiosk_identify', sa.String(length=10), server_default='device', nullable=False))
        batch_op.add_column(sa.Column('kiosk_pin_hash', sa.String(length=255), nullable=True))
        # sa.false(): "false" on PostgreSQL, 0 on SQLite (a literal 0 is not a boolean on PostgreSQL).
        batch_op.add_column(sa.Column('checkin_required', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('checkin_opens_minutes', sa.Integer(), server_default='10', nullable=False))
        batch_op.add_column(sa.Column('checkin_release_minutes', sa.Integer(), server_default='10', nullable=False))


def downgrade():
    with op.batch_alter_table('venues', schema=None) as batch_op:
        batch_op.drop_column('checkin_release_minutes')
        batch_op.drop_column('checkin_opens_minutes')
        batch_op.drop_column('checkin_required')
        batch_op.drop_column('kiosk_pin_hash')
        batch_op.drop_column('kiosk_identify')
        batch_op.drop_column('kiosk_poll_seconds')
        batch_op.drop_column('kiosk_soon_minutes')

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_users_badge_number'), type_='unique')
        batch_op.drop_column('badge_number')

    with op.batch_alter_table('kiosk_no_shows', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_kiosk_no_shows_venue_id'))
    op.drop_table('kiosk_no_shows')

    with op.batch_alter_table('kiosk_checkins', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_kiosk_checkins_space_id'))
    op.drop_table('kiosk_checkins')
