"""feed tokens: one per (user, feed) for the iCalendar feeds (feeds.models.FeedToken)

Revision ID: 3823f72f4f96
Revises: 63b41dfa67ad
Create Date: 2026-11-24 04:09:07.520551

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '3823f72f4f96'
down_revision = '63b41dfa67ad'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('feed_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=False),
    sa.Column('selector', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_used_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_feed_tokens_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feed_tokens')),
    sa.UniqueConstraint('selector', name=op.f('uq_feed_tokens_selector')),
    sa.UniqueConstraint('user_id', 'kind', 'target_id', name=op.f('uq_feed_tokens_user_id'))
    )
    with op.batch_alter_table('feed_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_feed_tokens_user_id'), ['user_id'], unique=False)


def downgrade():
    with op.batch_alter_table('feed_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feed_tokens_user_id'))

    op.drop_table('feed_tokens')
