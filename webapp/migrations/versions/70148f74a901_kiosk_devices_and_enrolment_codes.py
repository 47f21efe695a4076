"""kiosk devices and enrolment codes: enrolled tablets (kiosk.models.Device, token stored hashed) and the
short one-time codes that enrol them (kiosk.models.EnrolmentCode)

Revision ID: 70148f74a901
Revises: 3823f72f4f96
Create Date: 2026-11-24 04:09:31.815036

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '70148f74a901'
down_revision = '3823f72f4f96'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('kiosk_devices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('venue_id', sa.Integer(), nullable=False),
    sa.Column('space_id', sa.Integer(), nullable=True),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('last_seen_at', sa.DateTime(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_kiosk_devices_created_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['space_id'], ['spaces.id'], name=op.f('fk_kiosk_devices_space_id_spaces'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['venue_id'], ['venues.id'], name=op.f('fk_kiosk_devices_venue_id_venues'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kiosk_devices')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_kiosk_devices_token_hash'))
    )
    with op.batch_alter_table('kiosk_devices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_kiosk_devices_space_id'), ['space_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_kiosk_devices_venue_id'), ['venue_id'], unique=False)

    op.create_table('kiosk_enrolment_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('venue_id', sa.Integer(), nullable=False),
    sa.Column('space_id', sa.Integer(), nullable=True),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('used_at', sa.DateTime(), nullable=True),
    sa.Column('device_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_kiosk_enrolment_codes_created_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['device_id'], ['kiosk_devices.id'], name=op.f('fk_kiosk_enrolment_codes_device_id_kiosk_devices'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['space_id'], ['spaces.id'], name=op.f('fk_kiosk_enrolment_codes_space_id_spaces'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['venue_id'], ['venues.id'], name=op.f('fk_kiosk_enrolment_codes_venue_id_venues'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kiosk_enrolment_codes')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_kiosk_enrolment_codes_code_hash'))
    )
    with op.batch_alter_table('kiosk_enrolment_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_kiosk_enrolment_codes_venue_id'), ['venue_id'], unique=False)


def downgrade():
    with op.batch_alter_table('kiosk_enrolment_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_kiosk_enrolment_codes_venue_id'))

    op.drop_table('kiosk_enrolment_codes')
    with op.batch_alter_table('kiosk_devices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_kiosk_devices_venue_id'))
        batch_op.drop_index(batch_op.f('ix_kiosk_devices_space_id'))

    op.drop_table('kiosk_devices')
