"""space photos: uploaded by an admin or fetched from the paired Microsoft 365 room (booking.models.SpacePhoto)

Revision ID: c3f8a1d2e4b6
Revises: 5e2d9c1b7a40
Create Date: 2026-12-07 22:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c3f8a1d2e4b6'
down_revision = '5e2d9c1b7a40'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('space_photos',
    sa.Column('space_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=True),
    sa.Column('data', sa.LargeBinary(), nullable=True),
    sa.Column('etag', sa.String(length=80), nullable=True),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['space_id'], ['spaces.id'], name=op.f('fk_space_photos_space_id_spaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('space_id', name=op.f('pk_space_photos'))
    )


def downgrade():
    op.drop_table('space_photos')
