"""Flask CLI commands (`flask --app app …`).

Public API: `init_app(app)` registers:
- `api-token EMAIL [--name NAME]`: prints a new API token for the user (stored hashed).
- `create-user EMAIL --first --last [--admin] [--password]`: adds a user.
- `seed-demo`: the demo venue, spaces, users and a week of bookings; does nothing if a venue exists.
- `connect-demo [--exit-code]`: connects the demo venue to the Microsoft 365 sandbox tenant and pairs its
  rooms (`demo.connect_demo_to_sandbox`); does nothing when the venue has integration settings already or no
  sandbox tenant is configured. Exit status 1 when the checks fail (nothing saved or paired); with
  `--exit-code`, 3 when there was nothing to do, so a script can tell it from a fresh connection (0).
"""

from __future__ import annotations

import click
from flask import Flask
from sqlalchemy import select

from .extensions import db


def init_app(app: Flask) -> None:
    app.cli.add_command(api_token_command)
    app.cli.add_command(create_user_command)
    app.cli.add_command(seed_demo_command)
    app.cli.add_command(connect_demo_command)


@click.command("api-token")
@click.argument("email")
@click.option("--name", default="cli", help="A label to tell the token apart on the profile page.")
def api_token_command(email: str, name: str) -> None:
    """Print a new API token for EMAIL."""
    from .auth.models import User, issue_api_token, normalise_email

    user = db.session.scalar(select(User).where(User.email == normalise_email(email)))
    if user is None:
        raise click.ClickException(f"No user with email {email}.")
    _, plaintext = issue_api_token(user, name)
    db.session.commit()
    click.echo(plaintext)


@click.command("create-user")
@click.argument("email")
@click.option("--first", "first_name", default="")
@click.option("--last", "last_name", default="")
@click.option("--admin", is_flag=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def create_user_command(email: str, first_name: str, last_name: str, admin: bool, password: str) -> None:
    """Add a user who can sign in with PASSWORD."""
    from .auth.models import User, normalise_email

    email = normalise_email(email)
    if db.session.scalar(select(User).where(User.email == email)):
        raise click.ClickException(f"{email} exists already.")
    user = User(email=email, first_name=first_name, last_name=last_name, role="admin" if admin else "member")
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    click.echo(f"Created {email}.")


@click.command("seed-demo")
def seed_demo_command() -> None:
    """Seed the demo venue (once)."""
    from .demo import seed_demo

    created = seed_demo()
    click.echo("Seeded the demo venue." if created else "A venue exists already; nothing seeded.")


NOTHING_TO_DO = 3  # `connect-demo --exit-code`: nothing changed


@click.command("connect-demo")
@click.option("--exit-code", is_flag=True, help=f"Exit with {NOTHING_TO_DO} when there was nothing to do.")
@click.pass_context
def connect_demo_command(ctx: click.Context, exit_code: bool) -> None:
    """Connect the demo venue to the sandbox tenant and pair its rooms (once)."""
    from .demo import DemoConnectError, connect_demo_to_sandbox

    try:
        connection = connect_demo_to_sandbox()
    except DemoConnectError as error:
        raise click.ClickException(str(error)) from None
    click.echo(connection.message)
    if exit_code and not connection.connected:
        ctx.exit(NOTHING_TO_DO)
